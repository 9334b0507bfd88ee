// Package oidc accepts JWTs from configured OIDC issuers using replicated
// key sets, so every member accepts and rejects the same tokens at the same
// revision (DESIGN.md, failures 1 and 3).
//
// The parts and their contract:
//
//   - Config (config.go) is one issuer: a Kubernetes JWTAuthenticator
//     (apiserver.config.k8s.io/v1beta1) plus an optional leeway. ParseDocuments
//     reads YAML or JSON as an operator writes it and validates it; CEL
//     expressions are refused, never ignored.
//   - Store (store.go) is the replicated state: bucket "oidc_issuers" of the
//     state database, applied on the raft loop by server/state. Apply does no
//     I/O but bbolt and reads no clock: configs, key sets and fetch times
//     come in the command. Committed publishes an immutable View.
//   - Fetcher (fetcher.go) runs on every member but fetches only while the
//     member is leader: discovery document and JWKS over HTTPS with a
//     timeout, a size bound, the issuer's CA bundle and per-issuer backoff.
//     It proposes a SetOIDCIssuerKeys entry only when the key set changed.
//     Followers ask the leader for a refresh (RequestRefresh), rate-limited
//     per issuer, when they meet an unknown key id; they never fetch.
//   - Validator (validator.go) checks a JWT against a View with go-jose:
//     RS256/384/512, PS256/384/512, ES256/384/512 and EdDSA only ("none" and
//     HMAC are refused before any key lookup), issuer, audience, time
//     (exp without leeway, nbf and iat with the leeway), required claims,
//     then maps username, groups and uid. It takes the time from an injected
//     clock, so the server decides which clock all members agree on.
//
// Durable layout (bucket owned here), version 1:
//
//	oidc/version          -> uint32 big endian (FormatVersion)
//	oidc_issuers/<url>    -> raftstorev1.OIDCIssuer
//
// Concurrency: Init, Restore, Apply* and Committed run on the raft apply
// loop only. View, Validator.Verify and Fetcher methods are safe from any
// goroutine.
package oidc
