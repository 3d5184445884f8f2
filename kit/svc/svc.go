// Package svc runs a service's command endpoints on NATS micro: one endpoint
// per action on chat.cmd.<service>.*.<action> (and, for a service that
// backends call, chat.sys.<service>.*.<action>), in the service's queue
// group, protobuf in and out, the principal's org checked against the
// subject, and every request handled on a bounded pool of goroutines (micro
// delivers an endpoint's requests one at a time, see docs/nats-notes.md):
// Workers of them at once, on reused goroutines (kit/gopool) that keep the
// stack they grew decoding and calling NATS.
package svc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/gopool"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Config configures a Server; the zero value of each field is its default.
type Config struct {
	// Name is the service name and queue group (names.Messaging, ...).
	Name string
	// System also serves every action on chat.sys.<service>.*.<action>,
	// where backends of an org send commands as the organization or one of
	// its users. A system principal is refused anywhere else.
	System bool
	// Version is shown by $SRV.INFO. Default "0.1.0".
	Version string
	// Workers bounds the requests handled at once. Default 256.
	Workers int
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration
	// Registerer gets the metrics. Default: a fresh registry (not exported).
	Registerer prometheus.Registerer
	// Logger gets handler failures. Default slog.Default().
	Logger *slog.Logger
}

// Server is one instance of a command service.
type Server struct {
	cfg      Config
	nc       *nats.Conn
	micro    micro.Service
	sem      chan struct{}
	pool     gopool.Pool    // runs the requests; sem bounds them
	wg       sync.WaitGroup // in-flight requests
	mu       sync.Mutex     // orders wg.Add before Stop's wg.Wait
	stopped  bool           // guarded by mu: Stop is waiting
	log      *slog.Logger
	warnedAt atomic.Int64 // unix nanos of the last "unavailable" warning
	results  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New registers the service with NATS micro; add endpoints with Handle.
func New(nc *nats.Conn, cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("svc: Config.Name is required")
	}
	if cfg.Version == "" {
		cfg.Version = "0.1.0"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := micro.AddService(nc, micro.Config{Name: cfg.Name, Version: cfg.Version, QueueGroup: cfg.Name})
	if err != nil {
		return nil, err
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"service": cfg.Name}, cfg.Registerer)
	s := &Server{
		cfg:   cfg,
		nc:    nc,
		micro: m,
		sem:   make(chan struct{}, cfg.Workers),
		log:   cfg.Logger,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_service_commands_total",
			Help: "Commands handled by a service, by action and result code (ok or a protocol error code).",
		}, []string{"action", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_service_command_seconds",
			Help:    "Time a service took to handle a command, by action.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
		}, []string{"action"}),
	}
	if err := reg.Register(s.results); err != nil {
		return nil, err
	}
	if err := reg.Register(s.latency); err != nil {
		return nil, err
	}
	return s, nil
}

// Request is what every command carries: the acting principal.
type Request interface {
	proto.Message
	GetPrincipal() *chatv1.Principal
}

// HandlerFunc handles one command. A returned error becomes the reply's
// error field (errs.Error as is, NATS not answering as unavailable,
// anything else as internal, logged).
type HandlerFunc[Req Request, Resp proto.Message] func(ctx context.Context, req Req) (Resp, error)

// Handle adds the endpoint for action. Every response message of the
// contract has its Error in field 1, named "error"; Handle fills it.
func Handle[Req Request, Resp proto.Message](s *Server, action string, fn HandlerFunc[Req, Resp]) error {
	var zeroReq Req
	var zeroResp Resp
	reqType := zeroReq.ProtoReflect().Type()
	respType := zeroResp.ProtoReflect().Type()
	errField := respType.Descriptor().Fields().ByName("error")
	if errField == nil {
		return errors.New("svc: response " + string(respType.Descriptor().FullName()) + " has no error field")
	}
	handler := func(r micro.Request) {
		s.sem <- struct{}{}
		// Once Stop waits, a request still delivered by the draining
		// subscription is handled but not waited for: wg.Add concurrent
		// with wg.Wait is a data race.
		s.mu.Lock()
		tracked := !s.stopped
		if tracked {
			s.wg.Add(1)
		}
		s.mu.Unlock()
		s.pool.Go(func() {
			defer func() {
				<-s.sem
				if tracked {
					s.wg.Done()
				}
			}()
			start := time.Now()
			req := reqType.New().Interface().(Req)
			var resp Resp
			err := proto.Unmarshal(r.Data(), req)
			if err != nil {
				err = errs.New(errs.CodeValidation, "undecodable request")
			} else if err = checkPrincipal(r.Subject(), req.GetPrincipal()); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
				resp, err = fn(ctx, req)
				cancel()
			}
			code := "ok"
			if err != nil {
				e := s.classify(action, err)
				code = e.Code
				resp = respType.New().Interface().(Resp)
				resp.ProtoReflect().Set(errField, protoreflect.ValueOfMessage(errs.ToProto(e).ProtoReflect()))
			}
			s.results.WithLabelValues(action, code).Inc()
			s.latency.WithLabelValues(action).Observe(time.Since(start).Seconds())
			if r.Reply() == "" {
				return // published, not requested: nobody waits for a reply
			}
			out, merr := proto.Marshal(resp)
			if merr != nil {
				s.log.Error("marshal reply", "service", s.cfg.Name, "action", action, "err", merr)
				return
			}
			// Not r.Respond: it records a failure in the request, which
			// micro reads when the handler returns, before this goroutine
			// ends (a data race).
			if rerr := s.nc.Publish(r.Reply(), out); rerr != nil {
				s.log.Warn("respond", "service", s.cfg.Name, "action", action, "err", rerr)
			}
		})
	}
	if err := s.micro.AddEndpoint(action, micro.HandlerFunc(handler),
		micro.WithEndpointSubject(names.CommandWildcard(s.cfg.Name, action))); err != nil {
		return err
	}
	if s.cfg.System {
		if err := s.micro.AddEndpoint("system-"+action, micro.HandlerFunc(handler),
			micro.WithEndpointSubject(names.SystemCommandWildcard(s.cfg.Name, action))); err != nil {
			return err
		}
	}
	// The subscription reaches the server before Handle returns: a request
	// sent right after is not "no responders".
	return s.nc.Flush()
}

// classify maps a handler's failure to the client's error: an *errs.Error
// as is; NATS or JetStream not answering (natsx.IsUnavailable) is
// unavailable, logged at most once a second; anything else is internal, a
// defect, logged with its cause every time.
func (s *Server) classify(action string, err error) *errs.Error {
	e := natsx.AsError(err)
	switch {
	case e == errs.Internal:
		s.log.Error("command failed", "service", s.cfg.Name, "action", action, "err", err)
	case e == errs.Unavailable && !errs.Is(err, errs.CodeUnavailable):
		now := time.Now().UnixNano()
		if last := s.warnedAt.Load(); now-last >= int64(time.Second) && s.warnedAt.CompareAndSwap(last, now) {
			s.log.Warn("command unavailable: nats did not answer", "service", s.cfg.Name, "action", action, "err", err)
		}
	}
	return e
}

// checkPrincipal enforces tenancy at the service boundary: the <org> of
// the subject must be the principal's, both ids must be valid, and only a
// chat.sys subject (which edges may not publish to, and each backend only
// for its own org) carries the organization itself.
func checkPrincipal(subject string, p *chatv1.Principal) error {
	if p == nil || !ids.Valid(p.GetOrg()) || !ids.Valid(p.GetUser()) {
		return errs.New(errs.CodeUnauthenticated, "no valid principal")
	}
	if names.CommandOrg(subject) != p.GetOrg() {
		return errs.Forbidden("organization mismatch")
	}
	if p.GetSystem() && !names.IsSystemCommand(subject) {
		return errs.Forbidden("the organization acts only on chat.sys subjects")
	}
	return nil
}

// Stop stops taking requests and waits for those in flight (until ctx ends).
func (s *Server) Stop(ctx context.Context) error {
	err := s.micro.Stop()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}
