package ctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Environment variables for the credentials, read when the flag is not
// given.
const (
	envCACert    = "TOKENCTL_CACERT"
	envCert      = "TOKENCTL_CERT"
	envKey       = "TOKENCTL_KEY"
	envToken     = "TOKENCTL_TOKEN"
	envTokenFile = "TOKENCTL_TOKEN_FILE"
	envInsecure  = "TOKENCTL_INSECURE"
)

// credentialFlags say how tokenctl proves who it is and whom it trusts:
// TLS to the members (verified with --cacert, else the system roots), and
// a client certificate (--cert/--key) and/or a token (--token-file,
// --token) as the caller's identity.
type credentialFlags struct {
	cacert, cert, key string
	token, tokenFile  string
	insecure          bool
}

func (c *credentialFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.cacert, "cacert", "", "CA bundle (PEM) that verifies the members' certificates; default the system roots (env "+envCACert+")")
	fs.StringVar(&c.cert, "cert", "", "client certificate (PEM) presented to the members (env "+envCert+")")
	fs.StringVar(&c.key, "key", "", "key of --cert (env "+envKey+")")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the caller's bearer token, such as <data-dir>/admin.token (env "+envTokenFile+")")
	fs.StringVar(&c.token, "token", "", "the caller's bearer token (visible to other local users in the process list: prefer --token-file or env "+envToken+")")
	fs.BoolVar(&c.insecure, "insecure", false, "plain text, for members started with --insecure (env "+envInsecure+")")
}

// resolve checks the credential flags (filling in the environment) and
// returns the transport credentials and the options carrying the token.
func (c *credentialFlags) resolve(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (credentials.TransportCredentials, []grpc.DialOption, error) {
	get := func(flag, env, v string) string {
		if fs.Changed(flag) {
			return v
		}
		if e, ok := lookupEnv(env); ok && e != "" {
			return e
		}
		return v
	}
	cacert, cert, key := get("cacert", envCACert, c.cacert), get("cert", envCert, c.cert), get("key", envKey, c.key)
	tok, tokenFile := get("token", envToken, c.token), get("token-file", envTokenFile, c.tokenFile)
	plain := c.insecure
	if !fs.Changed("insecure") {
		if v, ok := lookupEnv(envInsecure); ok && v != "" && v != "0" && v != "false" {
			plain = true
		}
	}
	if tok != "" && tokenFile != "" {
		return nil, nil, usageErrorf("--token and --token-file: give one")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, nil, usageErrorf("--token-file: %v", err)
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return nil, nil, usageErrorf("--token-file %s is empty", tokenFile)
		}
	}
	var opts []grpc.DialOption
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken{token: tok, secure: !plain}))
	}
	if plain {
		if cacert != "" || cert != "" {
			return nil, nil, usageErrorf("--insecure: --cacert and --cert need TLS")
		}
		return insecure.NewCredentials(), opts, nil
	}
	cfg, err := clientTLS(cacert, cert, key)
	if err != nil {
		return nil, nil, err
	}
	return credentials.NewTLS(cfg), opts, nil
}

func clientTLS(cacert, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		b, err := os.ReadFile(cacert)
		if err != nil {
			return nil, usageErrorf("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usageErrorf("--cacert %s: no PEM certificate in it", cacert)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, usageErrorf("--cert and --key: give both or neither")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usageErrorf("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// bearerToken sends the caller's token as "authorization: Bearer ...".
type bearerToken struct {
	token  string
	secure bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity keeps the token off plain-text connections
// unless the user chose --insecure.
func (b bearerToken) RequireTransportSecurity() bool { return b.secure }

// String never shows the token.
func (b bearerToken) String() string { return fmt.Sprintf("bearer token (%d bytes)", len(b.token)) }

// recordingCreds remembers a failed TLS handshake in the connection's
// dialRecorder, so a skipped endpoint says "certificate signed by unknown
// authority" rather than only that the connection failed.
type recordingCreds struct {
	credentials.TransportCredentials
	rec *dialRecorder
}

func (r recordingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.rec.mu.Lock()
		r.rec.err = fmt.Errorf("%s: TLS handshake: %w (check --cacert, --cert/--key, or --insecure for a plain-text member)", authority, err)
		r.rec.mu.Unlock()
	}
	return c, info, err
}

func (r recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{TransportCredentials: r.TransportCredentials.Clone(), rec: r.rec}
}
