package edge

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// accept authenticates an upgrade request and, if it passes, turns the
// request's goroutine into the connection's reader.
func (s *Server) accept(w http.ResponseWriter, r *http.Request) {
	if !s.upgradeAllowed(w, r) {
		return
	}
	token := bearer(r)
	if token == "" {
		s.refuse(w, r, "missing token", "no token in the Authorization header or access_token")
		return
	}
	id, err := s.auth.Verify(token)
	if err != nil {
		s.refuse(w, r, "invalid token", err.Error())
		return
	}
	if ok, why := s.admit.admit(id.Org, id.User); !ok {
		s.tooMany(w, r, why)
		return
	}
	nc, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		s.admit.release(id.Org, id.User)
		s.log.Info("upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	_ = nc.SetDeadline(time.Time{}) // the handshake is over
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		// Frames sent right behind the request: read them first.
		b, _ := rw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	if !s.track() {
		s.admit.release(id.Org, id.User)
		_ = nc.Close()
		return
	}
	// This goroutine returns to net/http, which then drops the request,
	// its buffers and its stack: an idle connection keeps only what the
	// edge needs (no goroutine when the poller watches it).
	c := s.open(nc, id, early, nil, func() {
		s.admit.release(id.Org, id.User)
		s.readers.Done()
	})
	c.begin()
}

// originAllowed checks the Origin allow-list and answers 403 for an
// origin not in it.
func (s *Server) originAllowed(w http.ResponseWriter, r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" && len(s.cfg.AllowedOrigins) > 0 && !slices.Contains(s.cfg.AllowedOrigins, origin) {
		s.metrics.authFailures.WithLabelValues("origin").Inc()
		s.log.Info("upgrade refused", "reason", "origin not allowed", "remote", r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return false
	}
	return true
}

// upgradeAllowed runs the checks every upgrade passes before its token,
// at /ws and at /socket.io/ alike: not draining (503), the per-address
// attempt rate (429), the Origin allow-list (403). It answers a refusal
// itself.
func (s *Server) upgradeAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return false
	}
	if !s.admit.attempt(r) {
		s.tooMany(w, r, "upgrade rate per address")
		return false
	}
	return s.originAllowed(w, r)
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, label, why string) {
	s.metrics.authFailures.WithLabelValues(label).Inc()
	s.log.Info("upgrade refused", "reason", why, "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, why string) {
	s.metrics.refused.WithLabelValues(why).Inc()
	s.log.Info("upgrade refused", "reason", why, "remote", r.RemoteAddr)
	w.Header().Set("Retry-After", "1")
	http.Error(w, "too many connections: "+why, http.StatusTooManyRequests)
}

// bearer finds the token: the Authorization header first, then the
// access_token query parameter (browsers cannot set headers).
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}
