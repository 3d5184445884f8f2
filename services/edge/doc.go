// Package edge is Switchboard's WebSocket gateway: it terminates client
// connections and speaks the client protocol (docs/protocol.md), and it
// talks to the services over NATS. It holds no durable state.
//
// The life of a connection:
//
//  1. Upgrade (accept.go): the per-address attempt limit, the Origin
//     allow-list (403), the token from the Authorization header or the
//     access_token query (401), the per-user and per-edge connection
//     limits (429), then the WebSocket upgrade through net/http.
//  2. Setup (conn.go, open): on the upgrade's goroutine, which then returns
//     to net/http: registration, the user's event subscription (hub.go),
//     a presence report (presence.go) and the session event.
//  3. Reading (conn.go, poll_linux.go): the poller waits for readable
//     sockets with epoll; a goroutine reads one frame (frame.go), runs it
//     and hands the socket back, so an idle connection costs no goroutine.
//     A command (command.go, dispatch.go) is decoded strictly, checked
//     against the token's expiry and the rate limits (ratelimit.go), and
//     forwarded as protobuf to its service (conversations.go, messages.go,
//     presence.go); the reply is rendered (render.go) and queued.
//  4. Writing (send.go): a bounded queue per connection, flushed with writev
//     by a goroutine that runs only while there are frames; a connection
//     that falls behind is closed with 1013 and nobody waits for it.
//  5. Fan-out (hub.go, room.go): one subscription per conversation joined
//     here, per user connected here and per participant whose presence
//     matters here. Each event is decoded and rendered once and the same
//     frame is queued on every socket. Rooms deliver durable events in seq
//     order (holding an early one, fetching what is missing), drop typing
//     repeats and coalesce receipts.
//  6. Timers (server.go, sweep): one janitor for all connections: pings,
//     the idle timeout, token expiry (auth:expiring, 4001) and presence
//     heartbeats in batches.
//  7. The end: a close code is sent as the last frame, the socket closed,
//     the connection taken out of its rooms and reported gone to presence.
//     Shutdown closes every socket with 1012.
package edge
