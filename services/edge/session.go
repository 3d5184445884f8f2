package edge

import "time"

type limitJSON struct {
	Capacity        int     `json:"capacity"`
	RefillPerSecond float64 `json:"refillPerSecond"`
}

type sessionJSON struct {
	UserID       string               `json:"userId"`
	OrgID        string               `json:"orgId"`
	ConnectionID string               `json:"connectionId"`
	ExpiresAt    string               `json:"expiresAt"`
	Limits       map[string]limitJSON `json:"limits"`
}

// limitsJSON is the limit in force for every command type.
func (s *Server) limitsJSON() map[string]limitJSON {
	out := map[string]limitJSON{}
	for typ := range commands {
		_, l := s.cfg.Limits.Bucket(typ)
		out[typ] = limitJSON{l.Capacity, l.RefillPerSecond()}
	}
	return out
}

func (s *Server) sessionFrame(c *conn, expires time.Time) []byte {
	return jsonFrame(eventJSON{Type: "session", Data: sessionJSON{
		UserID: c.user, OrgID: c.org, ConnectionID: c.id, ExpiresAt: formatTime(expires), Limits: s.limits,
	}})
}

func (s *Server) expiringFrame(expires time.Time) []byte {
	return jsonFrame(eventJSON{Type: "auth:expiring", Data: struct {
		ExpiresAt string `json:"expiresAt"`
	}{formatTime(expires)}})
}
