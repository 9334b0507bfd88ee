package clustertest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
	"github.com/tokenstore/tokenstore/internal/devcerts"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/server"
	"github.com/tokenstore/tokenstore/server/tlsconfig"
)

// rawCodec sends and receives message bytes untouched, so the test can call
// every method of the API without knowing its request type: an empty
// request is a valid (empty) message of any type.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// apiMethods lists every method the member serves, from its own reflection
// service: a method added later is in the list without anyone adding it.
func apiMethods(ctx context.Context, t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var methods []string
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	for _, svc := range list.GetListServicesResponse().GetService() {
		files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc.GetName()}})
		for _, b := range files.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(b, &fd); err != nil {
				t.Fatal(err)
			}
			for _, sd := range fd.GetService() {
				full := sd.GetName()
				if fd.GetPackage() != "" {
					full = fd.GetPackage() + "." + full
				}
				if full != svc.GetName() {
					continue
				}
				for _, md := range sd.GetMethod() {
					methods = append(methods, "/"+full+"/"+md.GetName())
				}
			}
		}
	}
	return methods
}

// callRaw calls method with an empty request and returns the status of the
// first answer (or of the call).
func callRaw(ctx context.Context, conn *grpc.ClientConn, method string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	empty := []byte{}
	if err := stream.SendMsg(&empty); err != nil && err != io.EOF {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	var out []byte
	err = stream.RecvMsg(&out)
	if err == io.EOF {
		return nil
	}
	return err
}

// TestEveryAdminRPCNeedsAnAdministrator calls every method of the client
// API, as listed by the member's reflection service, as four callers: no
// credentials, a token of a non-administrator, a client certificate not in
// --admin-subjects, and the administrator. Admin methods refuse the first
// three (UNAUTHENTICATED, PERMISSION_DENIED); the authenticator methods
// (Authenticate, Authorize) need any of the credentials; health is public.
func TestEveryAdminRPCNeedsAnAdministrator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	methods := apiMethods(ctx, t, m.Conn())
	for _, want := range []string{tokenstorev1.TokenService_CreateToken_FullMethodName, tokenstorev1.ClusterService_RemoveMember_FullMethodName,
		tokenstorev1.RBACService_ApplyRBAC_FullMethodName, tokenstorev1.AuthService_Authenticate_FullMethodName, tokenstorev1.ClusterService_Snapshot_FullMethodName} {
		found := false
		for _, got := range methods {
			found = found || got == want
		}
		if !found {
			t.Fatalf("reflection lists %v, without %s", methods, want)
		}
	}

	plainTLS, err := c.ClientTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	anonymous, err := m.Dial(grpc.WithTransportCredentials(credentials.NewTLS(plainTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer anonymous.Close()
	bob, err := m.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: "bob", Groups: []string{"dev", "system:masters"}}})
	if err != nil {
		t.Fatal(err)
	}
	userToken, err := m.Dial(grpc.WithTransportCredentials(credentials.NewTLS(plainTLS)), grpc.WithPerRPCCredentials(bearerCreds(bob.GetBearerToken())))
	if err != nil {
		t.Fatal(err)
	}
	defer userToken.Close()
	certFile, keyFile, err := c.IssueClientCert("reader", "reader")
	if err != nil {
		t.Fatal(err)
	}
	readerTLS, err := c.ClientTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	userCert, err := m.Dial(grpc.WithTransportCredentials(credentials.NewTLS(readerTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer userCert.Close()

	refused := func(err error) bool {
		return status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied
	}
	admins := 0
	for _, method := range methods {
		role := server.MethodRole(method)
		t.Run(strings.TrimPrefix(method, "/"), func(t *testing.T) {
			anon, tok, cert := callRaw(ctx, anonymous, method), callRaw(ctx, userToken, method), callRaw(ctx, userCert, method)
			switch role {
			case "admin":
				admins++
				if status.Code(anon) != codes.Unauthenticated {
					t.Errorf("without credentials: %v, want UNAUTHENTICATED", anon)
				}
				if status.Code(tok) != codes.PermissionDenied {
					t.Errorf("with a non-admin token: %v, want PERMISSION_DENIED", tok)
				}
				if status.Code(cert) != codes.PermissionDenied {
					t.Errorf("with a non-admin client certificate: %v, want PERMISSION_DENIED", cert)
				}
			case "authenticator":
				if status.Code(anon) != codes.Unauthenticated {
					t.Errorf("without credentials: %v, want UNAUTHENTICATED", anon)
				}
				if refused(tok) || refused(cert) {
					t.Errorf("an authenticated caller was refused: token %v, certificate %v", tok, cert)
				}
			case "public":
				if refused(anon) {
					t.Errorf("without credentials: %v, want an answer", anon)
				}
			}
			if err := callRaw(ctx, m.Conn(), method); refused(err) {
				t.Errorf("the administrator was refused: %v", err)
			}
		})
	}
	if admins < 15 {
		t.Errorf("only %d admin methods among %v", admins, methods)
	}

	// The webhooks need a caller too; probes do not.
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + bob.GetBearerToken() + `"}}`
	anonHTTP := &http.Client{Transport: &http.Transport{TLSClientConfig: plainTLS}}
	resp, err := anonHTTP.Post(m.HTTPURL("/apis/authentication.k8s.io/v1/tokenreviews"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("TokenReview without credentials: %d, want 401", resp.StatusCode)
	}
	resp, err = anonHTTP.Get(m.HTTPURL("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz without credentials: %d, want 200", resp.StatusCode)
	}
	readerHTTP := &http.Client{Transport: &http.Transport{TLSClientConfig: readerTLS}}
	resp, err = readerHTTP.Post(m.HTTPURL("/apis/authentication.k8s.io/v1/tokenreviews"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"authenticated":true`) {
		t.Errorf("TokenReview with a client certificate: %d %s, want 200 authenticated", resp.StatusCode, b)
	}
}

// bearerCreds sends a token as gRPC "authorization" metadata (over TLS).
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerCreds) RequireTransportSecurity() bool { return true }

// peerCreds writes a peer certificate for the cluster named token from ca
// into dir and returns client credentials presenting it and trusting the
// harness CA (so only the member's verdict on our certificate matters).
func peerCreds(t *testing.T, c *harness.Cluster, ca *devcerts.CA, dir, token string) credentials.TransportCredentials {
	t.Helper()
	f, err := devcerts.IssueMember(ca, dir, "intruder", []string{"127.0.0.1"}, []string{tlsconfig.PeerURI(token)})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.PeerCert, f.PeerKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.ClientTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return credentials.NewTLS(cfg)
}

// TestForeignPeerCannotJoinOrSendRaftMessages: a process with a peer
// certificate from another CA, or from the right CA but for another
// cluster, cannot send raft messages to a member, and a member started
// with a foreign CA cannot join; the cluster keeps its leader, term and
// membership.
func TestForeignPeerCannotJoinOrSendRaftMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := leader.Cluster.Status(ctx, &tokenstorev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	term := func(st *tokenstorev1.StatusResponse) uint64 {
		for _, ms := range st.GetMembers() {
			if ms.GetName() == st.GetLeaderName() {
				return ms.GetTerm()
			}
		}
		return 0
	}
	foreignCA, err := devcerts.NewCA("foreign CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A vote request with a far higher term: a member that took it would
	// step down and the cluster's term would jump.
	vote, err := proto.Marshal(&raftpb.Message{Type: raftpb.MessageType_MsgVote.Enum(), From: proto.Uint64(0xbad), To: proto.Uint64(before.GetLeaderId()), Term: proto.Uint64(term(before) + 1000)})
	if err != nil {
		t.Fatal(err)
	}
	dialPeer := func(creds credentials.TransportCredentials) raftstorev1.PeerServiceClient {
		conn, err := grpc.NewClient(leader.PeerAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return raftstorev1.NewPeerServiceClient(conn)
	}
	// Control: a certificate of this cluster gets through to the service.
	if _, err := dialPeer(peerCreds(t, c, c.CA(), filepath.Join(dir, "own"), "tokenstore")).MemberStatus(ctx,
		&raftstorev1.MemberStatusRequest{ClusterId: before.GetClusterId()}); err != nil {
		t.Fatalf("MemberStatus with this cluster's peer certificate: %v", err)
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"foreign CA", peerCreds(t, c, foreignCA, filepath.Join(dir, "foreign"), "tokenstore")},
		{"same CA, other cluster", peerCreds(t, c, c.CA(), filepath.Join(dir, "other"), "another-cluster")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := dialPeer(tc.creds)
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			if _, err := peer.MemberStatus(sctx, &raftstorev1.MemberStatusRequest{ClusterId: before.GetClusterId()}); !refusedAtHandshake(err) {
				t.Errorf("MemberStatus with a %s certificate: %v, want the TLS handshake refused", tc.name, err)
			}
			stream, err := peer.Stream(sctx)
			if err == nil {
				err = stream.Send(&raftstorev1.StreamRequest{ClusterId: before.GetClusterId(), From: 0xbad, Messages: [][]byte{vote}})
				if err == nil {
					_, err = stream.CloseAndRecv()
				}
			}
			if !refusedAtHandshake(err) {
				t.Errorf("raft message with a %s certificate: %v, want the TLS handshake refused", tc.name, err)
			}
			_, err = peer.Join(sctx, &raftstorev1.JoinRequest{ClusterId: before.GetClusterId(), Name: "intruder", PeerAddress: "127.0.0.1:1"})
			if !refusedAtHandshake(err) {
				t.Errorf("join with a %s certificate: %v, want the TLS handshake refused", tc.name, err)
			}
		})
	}

	// A whole member with certificates of a foreign CA (trusting the
	// cluster's CA, so the refusal is the cluster's) asks to join.
	m, err := c.NewMember("intruder")
	if err != nil {
		t.Fatal(err)
	}
	f, err := devcerts.IssueMember(foreignCA, filepath.Join(dir, "member"), m.Name, []string{"127.0.0.1"}, []string{tlsconfig.PeerURI("tokenstore")})
	if err != nil {
		t.Fatal(err)
	}
	var initial []string
	for _, o := range c.Members {
		initial = append(initial, o.Name+"="+o.AdvertisePeer)
	}
	m.Flags = []string{"--initial-cluster-state", "existing", "--initial-cluster", strings.Join(initial, ","),
		"--peer-cert", f.PeerCert, "--peer-key", f.PeerKey, "--peer-ca", c.CAFile()}
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	m.ExpectExit(true)
	for m.Running() {
		if ctx.Err() != nil {
			t.Fatalf("a member with a foreign CA is still running:\n%s", c.LogTails(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(m.LogPath)
	if !strings.Contains(string(log), "join cluster") {
		t.Errorf("the refused member's log does not say its join failed:\n%s", log)
	}

	after, err := leader.Cluster.Status(ctx, &tokenstorev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetLeaderId() != before.GetLeaderId() || term(after) != term(before) || len(after.GetMembers()) != len(before.GetMembers()) {
		t.Errorf("cluster changed: leader %x term %d members %d, was leader %x term %d members %d",
			after.GetLeaderId(), term(after), len(after.GetMembers()), before.GetLeaderId(), term(before), len(before.GetMembers()))
	}
	for _, o := range c.Members[:3] {
		create(ctx, t, o, fmt.Sprintf("after-intruder-%s", o.Name))
	}
}

// refusedAtHandshake reports whether err is a connection the member's TLS
// refused rather than an answer of the peer service. With TLS 1.3 the
// client learns of the refusal of its certificate only when it next reads
// or writes, so the error is a TLS alert, a reset or a broken pipe; the
// peer service's own errors name the operation ("process raft message",
// "join:") and a connection that got through answers MemberStatus (the
// control case below).
func refusedAtHandshake(err error) bool {
	msg := status.Convert(err).Message()
	return status.Code(err) == codes.Unavailable && !strings.Contains(msg, "process raft message") && !strings.Contains(msg, "join:")
}

// TestCertificateRotationOnDisk replaces a running member's serving
// certificate files; a new handshake sees the new certificate without a
// restart, and clients keep working.
func TestCertificateRotationOnDisk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := c.Members[1]
	pid := m.Pid()
	cfg, err := c.ClientTLS("", "")
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		conn, err := tls.Dial("tcp", m.ClientAddr, cfg)
		if err != nil {
			t.Fatalf("handshake with %s: %v", m.Name, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	}
	old := served()
	cert, key, err := c.CA().Issue(devcerts.Leaf{CommonName: m.Name + "-rotated", Hosts: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := devcerts.WritePair(c.MemberTLSDir(m), "server", cert, key); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	want := pair.Leaf.SerialNumber.Text(16)
	if want == old {
		t.Fatal("the new certificate has the old serial")
	}
	for got := served(); got != want; got = served() {
		if got != old {
			t.Fatalf("served serial %s, neither the old %s nor the new %s", got, old, want)
		}
		if ctx.Err() != nil {
			t.Fatalf("still serving the old certificate %s after the files changed", old)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.Pid() != pid {
		t.Fatalf("%s restarted (pid %d, was %d)", m.Name, m.Pid(), pid)
	}
	// A new connection through the harness's client works with it.
	conn, err := m.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := tokenstorev1.NewClusterServiceClient(conn).Status(ctx, &tokenstorev1.StatusRequest{}); err != nil {
		t.Fatalf("status over a connection made after the rotation: %v", err)
	}

	// The peer certificate too: another member's peer certificate (the
	// listener wants one of this cluster) sees the new one on its next
	// handshake, and the cluster keeps committing.
	other := c.Members[0]
	peerCfg, err := c.ClientTLS(filepath.Join(c.MemberTLSDir(other), "peer.crt"), filepath.Join(c.MemberTLSDir(other), "peer.key"))
	if err != nil {
		t.Fatal(err)
	}
	peerServed := func() string {
		conn, err := tls.Dial("tcp", m.PeerAddr, peerCfg)
		if err != nil {
			t.Fatalf("peer handshake with %s: %v", m.Name, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	}
	oldPeer := peerServed()
	cert, key, err = c.CA().Issue(devcerts.Leaf{CommonName: m.Name + "-peer-rotated", Hosts: []string{"127.0.0.1"},
		URIs: []string{tlsconfig.PeerURI("tokenstore")}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := devcerts.WritePair(c.MemberTLSDir(m), "peer", cert, key); err != nil {
		t.Fatal(err)
	}
	if pair, err = tls.X509KeyPair(cert, key); err != nil {
		t.Fatal(err)
	}
	want = pair.Leaf.SerialNumber.Text(16)
	for got := peerServed(); got != want; got = peerServed() {
		if got != oldPeer || ctx.Err() != nil {
			t.Fatalf("peer listener serves %s, want the rotated %s (was %s)", got, want, oldPeer)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Members reconnect to m with the new certificate after a restart of
	// one of them, and writes keep committing.
	c.Kill(other)
	if err := c.Start(other); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	create(ctx, t, other, "after-peer-rotation")
	if m.Pid() != pid {
		t.Fatalf("%s restarted (pid %d, was %d)", m.Name, m.Pid(), pid)
	}
}

// TestBootstrapAdminToken: exactly one member holds the bootstrap admin
// token, in a file only its owner can read, and tokenctl administers the
// cluster with it (--token-file, no client certificate); a non-admin token
// is refused.
func TestBootstrapAdminToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, "--bootstrap-admin-token=true")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var file string
	for file == "" {
		var found []string
		for _, m := range c.Members {
			p := filepath.Join(m.DataDir, server.AdminTokenFile)
			if _, err := os.Stat(p); err == nil {
				found = append(found, p)
			}
		}
		switch {
		case len(found) > 1:
			t.Fatalf("bootstrap admin token written by several members: %v", found)
		case len(found) == 1:
			file = found[0]
		case ctx.Err() != nil:
			t.Fatalf("no member wrote %s", server.AdminTokenFile)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	// tokenctl with the CA but not the administrator's client certificate
	// (empty flags override the harness's TOKENCTL_CERT/TOKENCTL_KEY).
	run := func(args ...string) (string, string, int) {
		return tokenctl(ctx, t, append([]string{"--endpoints", clientEndpoints(c), "--cert", "", "--key", ""}, args...)...)
	}
	out, errOut, code := run("--token-file", file, "token", "create", "--user", "carol", "--group", "dev", "-o", "json")
	if code != 0 {
		t.Fatalf("token create with the bootstrap admin token: exit %d: %s", code, errOut)
	}
	var created struct{ Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
		t.Fatalf("token create output %q: %v", out, err)
	}
	_, errOut, code = run("--token", created.Token, "token", "list")
	if code == 0 || !strings.Contains(errOut, "administrator") {
		t.Errorf("token list with a non-admin token: exit %d %q, want a refusal naming the administrator requirement", code, errOut)
	}
	_, errOut, code = run("token", "list")
	if code == 0 || !strings.Contains(errOut, "client certificate or a token") {
		t.Errorf("token list without credentials: exit %d %q, want a refusal", code, errOut)
	}
}

// TestInsecureRefusedOffLoopback: the real binary refuses --insecure on an
// address other machines can reach, with an error naming the flag, and
// starts with it on loopback.
func TestInsecureRefusedOffLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "tokenstore"), "--name", "open", "--data-dir", filepath.Join(dir, "open"),
		"--insecure", "--listen-client", "0.0.0.0:0", "--listen-peer", "127.0.0.1:0", "--advertise-peer", "127.0.0.1:1", "--listen-http", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--insecure") || !strings.Contains(string(out), "--listen-client 0.0.0.0:0") {
		t.Fatalf("--insecure on 0.0.0.0: %v\n%s", err, out)
	}
	if raftstore.HasRaftLog(filepath.Join(dir, "open")) {
		t.Error("the refused member created raft state")
	}
	out, err = exec.CommandContext(ctx, filepath.Join(bin, "tokenstore"), "--name", "plain", "--data-dir", filepath.Join(dir, "plain"),
		"--listen-client", "127.0.0.1:0", "--listen-peer", "127.0.0.1:0", "--advertise-peer", "127.0.0.1:1", "--listen-http", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TLS is required") {
		t.Fatalf("no certificates and no --insecure: %v\n%s", err, out)
	}
}
