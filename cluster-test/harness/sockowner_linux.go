package harness

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errNoSocket: /proc/net/tcp lists no such connection.
var errNoSocket = errors.New("no such socket in /proc/net/tcp")

// socketInode finds the inode of the TCP socket whose local address is
// local and remote address is remote, from /proc/net/tcp and tcp6.
func socketInode(local, remote string) (string, error) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		ino, err := scanProcNet(f, local, remote)
		if err != nil {
			return "", err
		}
		if ino != "" {
			return ino, nil
		}
	}
	return "", fmt.Errorf("%w: %s→%s", errNoSocket, local, remote)
}

func scanProcNet(path, local, remote string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 64<<10)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 {
			continue
		}
		if procAddr(fields[1]) == local && procAddr(fields[2]) == remote {
			return fields[9], nil
		}
	}
	return "", s.Err()
}

// procAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
// Addresses are 32-bit words in host byte order; IPv4-mapped IPv6
// addresses come out as IPv4.
func procAddr(s string) string {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return ""
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return ""
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:i+4]))
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10))
}

// pidHoldsSocket reports whether process pid has the socket inode open.
func pidHoldsSocket(pid int, inode string) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + inode + "]"
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
			return true
		}
	}
	return false
}

// socketOwner returns which of pids holds the other end of c, an accepted
// loopback connection, or 0. closed reports that no process holds that end
// any more (its socket is gone from /proc/net/tcp, or orphaned: inode 0):
// its opener closed it or died, as a member SIGKILLed just after
// connecting does, before anyone could look.
func socketOwner(c net.Conn, pids []int) (pid int, closed bool) {
	ino, err := socketInode(c.RemoteAddr().String(), c.LocalAddr().String())
	if err != nil {
		return 0, errors.Is(err, errNoSocket)
	}
	if ino == "0" {
		return 0, true
	}
	for _, pid := range pids {
		if pidHoldsSocket(pid, ino) {
			return pid, false
		}
	}
	return 0, false
}
