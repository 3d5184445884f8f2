package edge

import "github.com/prometheus/client_golang/prometheus"

// metrics of one edge. Labels stay bounded: orgs, command types, codes and
// services; never user or conversation ids.
type metrics struct {
	connections  *prometheus.GaugeVec     // org
	commands     *prometheus.CounterVec   // type, result
	fanout       *prometheus.CounterVec   // kind: events received, frames delivered
	closes       *prometheus.CounterVec   // code
	overflows    prometheus.Counter       //
	writes       prometheus.Counter       // system calls that wrote to sockets
	blocked      prometheus.Counter       // writes handed to a goroutine that waits
	authFailures *prometheus.CounterVec   // reason
	requests     *prometheus.HistogramVec // service, action
	retries      *prometheus.CounterVec   // service, action
	gaps         *prometheus.CounterVec   // outcome

	presenceUpdates     prometheus.Counter
	presenceUnavailable prometheus.Counter
	presenceSubs        *prometheus.GaugeVec // kind: user, organization

	rateChecks    *prometheus.CounterVec // result
	rateFallbacks prometheus.Counter
	refused       *prometheus.CounterVec // reason

	activitySubs    prometheus.Gauge       // conversations followed for activity
	activityRefused prometheus.Counter     // follows refused at MaxActivitySubscriptions
	activityResyncs *prometheus.CounterVec // reason: reconnect, slow_consumer
	files           *prometheus.CounterVec // op (upload, download), status
	fileBytes       *prometheus.CounterVec // op
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_edge_connections", Help: "Live WebSocket connections by organization.",
		}, []string{"org"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_commands_total", Help: "Client commands by type and result (ok or an error code).",
		}, []string{"type", "result"}),
		fanout: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_fanout_total",
			Help: "Events received from NATS (kind=received) and frames they became on sockets (kind=delivered).",
		}, []string{"kind"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_closes_total", Help: "Sockets closed by the server, by close code (client: closed by the client).",
		}, []string{"code"}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_edge_send_queue_overflows_total", Help: "Sockets closed with 1013 because their send queue overflowed.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_edge_socket_writes_total",
			Help: "Writes to sockets (system calls); frames delivered per write is how much the writers coalesce.",
		}),
		blocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_edge_blocked_writes_total",
			Help: "Writes to a socket whose buffer was full, done by a goroutine that waits for it (slow clients, bursts).",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_auth_failures_total", Help: "Refused upgrades and failed auth:refresh, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_edge_nats_request_seconds", Help: "Latency of the edge's NATS requests to services.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
		}, []string{"service", "action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_nats_request_retries_total", Help: "Requests to services tried again after an attempt went unanswered.",
		}, []string{"service", "action"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_edge_sequence_gaps_total",
			Help: "Conversation events that arrived before their predecessor, by outcome (filled from the stream, or given up).",
		}, []string{"outcome"}),
	}
	m.presenceUpdates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_edge_presence_states_total", Help: "Connection states sent to the presence service (connects, changes, closes, renewals).",
	})
	m.presenceUnavailable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_edge_presence_unavailable_total", Help: "Join replies sent without presence because the presence service did not answer.",
	})
	m.presenceSubs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_edge_presence_subscriptions",
		Help: "The edge's presence subscriptions: to one user (kind=user), or to an organization past its bound (kind=organization).",
	}, []string{"kind"})
	m.rateChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_edge_rate_checks_total",
		Help: "Rate-limit decisions by result: allowed, denied (by the service), local_denied (a known empty bucket, no NATS), fallback_allowed and fallback_denied (per-connection buckets while the service is down).",
	}, []string{"result"})
	m.rateFallbacks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_edge_rate_fallbacks_total", Help: "Rate-limit checks the service did not answer in time (the edge fell back to per-connection buckets).",
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_edge_upgrades_refused_total", Help: "Upgrades refused with 429, by reason.",
	}, []string{"reason"})
	m.activitySubs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchboard_edge_activity_subscriptions", Help: "Conversations the edge follows for conversation:activity (one subscription each).",
	})
	m.activityRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_edge_activity_refused_total", Help: "Conversations not followed for activity because the edge held MaxActivitySubscriptions.",
	})
	m.activityResyncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_edge_activity_resyncs_total",
		Help: "Resyncs of the conversations followed for activity, done (every follower's set asked of messaging again), by reason (reconnect, slow_consumer).",
	}, []string{"reason"})
	m.files = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_edge_file_requests_total", Help: "Answers of /files, by op (upload, download) and HTTP status.",
	}, []string{"op", "status"})
	m.fileBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_edge_file_bytes_total", Help: "Bytes of files stored (op=upload) and served (op=download).",
	}, []string{"op"})
	for _, c := range []prometheus.Collector{m.activitySubs, m.activityRefused, m.activityResyncs, m.files, m.fileBytes, m.connections, m.commands, m.fanout, m.closes, m.overflows, m.writes, m.blocked, m.authFailures, m.requests, m.retries, m.gaps, m.presenceUpdates, m.presenceUnavailable, m.presenceSubs, m.rateChecks, m.rateFallbacks, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
