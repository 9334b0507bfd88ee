package state

import "github.com/tokenstore/tokenstore/server/oidc"

// OIDC is the OIDC issuer store: its View validates JWTs.
func (s *State) OIDC() *oidc.Store { return s.oidc }
