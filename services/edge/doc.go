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
//     That goroutine, and a lane's below, is a worker of the Server's pool
//     (kit/gopool): reused, with the stack it grew, by any connection, and
//     ended once idle for gopool.DefaultIdle.
//     A command (command.go, dispatch.go) is decoded strictly and checked
//     against the token's expiry and the rate limits (ratelimit.go) by the
//     reader, in arrival order; then it goes to its lane (lanes.go) and is
//     forwarded as protobuf to its service (conversations.go, messages.go,
//     presence.go); the reply is rendered (render.go) and queued.
//     Ordering (docs/protocol.md, Per-connection ordering): a lane is the
//     commands naming one conversation (the data's conversationId, for any
//     command type not listed in orderOf), which run one at a time in the
//     order they came on one goroutine that lives while the lane has
//     work; presence:set has a lane of its own; create, list,
//     presence:query and ping have none and run on a goroutine each;
//     auth:refresh runs on the reader, so every command read after it sees
//     its expiry. At most MaxCommandsInFlight (8) commands of a connection
//     are accepted and not answered; at the bound the reader waits (the
//     socket is not read: back-pressure), so a connection costs at most
//     that many goroutines for its commands and an idle one none. What the
//     commands share (rooms, the failure windows, the lanes) is guarded by
//     cmu. A reply that closes (1008, 4003) closes from the lane
//     (endWith): once, after that reply; nothing is queued after the close
//     frame (conn.send refuses once closing), and the connection's end
//     (finish) waits for the commands still running before it leaves its
//     rooms.
//  4. Writing (send.go, writer.go): a bounded queue per connection; a fixed
//     pool of writers takes a connection's whole queue and writes it in one
//     system call that does not wait, so batches grow with the load and an
//     idle socket's frame leaves at once. A socket whose buffer is full gets
//     a goroutine that waits for it, which the janitor bounds; a connection
//     that falls behind is closed with 1013 and nobody waits for it.
//  5. Fan-out (hub.go, room.go, watches.go): one subscription per
//     conversation joined here, per user connected here and per
//     participant whose presence matters here (past a bound, one per
//     organization). Each event is decoded and rendered once and the same
//     frame is queued on every socket. Rooms deliver durable events in seq
//     order (holding an early one, fetching what is missing), drop typing
//     repeats and coalesce receipts. Activity (activity.go): one
//     subscription per conversation that a user connected here is in (the
//     user's 1,000 most recent, asked of messaging at the first socket,
//     then kept by membership events, and asked again for every user
//     after a NATS reconnect or a slow consumer: activity_resync.go),
//     shared by the edge's users; coalesced to one per conversation per
//     second, queued on the sockets that did not join it.
//  6. Timers (server.go, sweep): one janitor for all connections: pings,
//     the idle timeout, token expiry (auth:expiring, 4001) and presence
//     heartbeats in batches.
//  7. The end: a close code is sent as the last frame, the socket closed,
//     the connection taken out of its rooms and reported gone to presence.
//     Shutdown closes every socket with 1012.
//
// A Socket.IO session (docs/protocol.md section 6) is the same connection
// with another decoder on the way in and another rendering on the way out:
//
//  1. Upgrade (socketio.go, acceptSocketIO): /socket.io/ with EIO=4 and
//     transport=websocket, else 400 with Engine.IO's JSON error body; then
//     the checks of /ws that come before the token (draining, attempts per
//     address, Origin) and the upgrade.
//  2. Handshake (socketio.go, handshake): still on the upgrade's goroutine,
//     the open packet is written, then packets are read for at most
//     SocketIOConnectTimeout until a connect packet for "/" (another
//     namespace gets 44 "Invalid namespace"). Its token goes through the
//     same Verify and the same connection limits as at /ws: a token defect
//     is refused with 44 (the client does not retry), a limit with a close
//     1013 and no 44 (the client retries with backoff).
//  3. Setup: open as for /ws, with a sioSession attached before anything is
//     queued: the connect reply 40{"sid":<connectionId>} is the first
//     packet, the session event the second.
//  4. Reading (sio_session.go, sio_packet.go): each Engine.IO packet is
//     decoded; an event 42[<id>]["type",data] becomes the command
//     {id, type, data} and takes the same path as a /ws frame (run): checks,
//     limits, lanes, handlers, replies (acks by ack id, in any order
//     across lanes). A packet that breaks Socket.IO's rules
//     closes with 1008; binary events are refused as invalid and their
//     attachments read and dropped (frame.go's onBinary).
//  5. Writing (sio_render.go, called by send and close): every frame is the
//     JSON protocol's, rendered once; the session queues the packet made
//     from it: events 42["type",data] (cached per event, so a room's
//     sockets share one packet as they share one frame), replies to acks
//     43<id>[data] or 43<id>[{"error":{"type",...}}], the janitor's ping as
//     Engine.IO's 2, and a close code as an error event and 41 before the
//     close frame.
//  6. Keep-alive: the janitor pings every PingInterval; a session without a
//     pong within pingTimeout (IdleTimeout - PingInterval) ends with a bare
//     close 1000, which socket.io-client answers by reconnecting.
//
// A file (docs/protocol.md section 7) is plain HTTP on the same listener,
// one request on net/http's goroutine, no connection, no lock of the edge:
//
//  1. Token (files.go, fileAuth): the same bearer and Verify as an upgrade;
//     a defect is 401 with a JSON body. While draining, 503.
//  2. Upload, POST /files (files.go, upload): the parameters (400), a
//     Content-Length over MaxFileBytes (413), a file:upload token from the
//     ratelimit service (sharedRate in ratelimit.go; 429, or 503 when it
//     does not answer), messaging's "file" action for membership (404),
//     all before the body is read. Then files.Put streams the body through
//     http.MaxBytesReader into chat_files: chunks of 128 KiB, four in
//     flight, the SHA-256 on the way, the metadata last; past the limit,
//     or on any failure, the chunks put are purged (413, 503). 201 with the
//     file's JSON.
//  3. Download, GET /files/{fileId} (files.go, download; files_range.go):
//     the metadata of <org>.<fileId> with one direct get, messaging's
//     "file" action for its conversation; every refusal is the same 404.
//     Then the headers (ETag, nosniff, CSP, inline or attachment), 304 for
//     If-None-Match, the range (206, 416), and files.Reader's chunks, one
//     direct get each, written as the client takes them: one chunk in
//     memory whatever the file's size.
//  4. Counted in switchboard_edge_file_requests_total (op, status) and
//     switchboard_edge_file_bytes_total (op); the NATS requests in the
//     request histogram like a command's.
//
// # Locks
//
// Whoever holds several locks takes them in this order, and never holds
// two of one kind (two connections', two rooms', two hub shards'):
//
//	conn.rmu → conn.cmu → room.pmu → watches.mu → hubShard.mu → room.mu → conn.qmu, conn.remMu
//
// activity.mu (activity.go) is taken with nothing held but rmu (a
// connection's open and end), and under it only NATS subscribe and
// unsubscribe run; it is let go before a socket's frame is queued, a room
// is asked whether a socket joined, or a user's conversations are asked of
// messaging (the first load and a resync's, activity_resync.go, whose
// triggers run on nats.go's callback goroutine with nothing held).
//
// Where each pair is taken:
//
//   - A connection's reader holds its rmu while it reads and checks a
//     command (and while an auth:refresh runs), and so does finish. Its
//     commands run on their lanes with no lock held: a join takes a hub
//     shard and the room in it (hub.acquire, room.add), then the room and
//     the socket's queue (room.ready queues the ack); a leave and the
//     connection's end take a shard and the room in it (hub.release,
//     hub.dropIf, room.stop). cmu is held for the connection's maps and
//     counters only, under rmu at most (the reader at the in-flight bound,
//     finish), and takes a room's mu under it (room.has, when a join at
//     the cap forgets the rooms a removal took it out of).
//   - A room's pmu comes before the presence watches and the shards it
//     changes (room.syncPresence, room.unwatchAll, then hub.watchPresence
//     and hub.unwatchPresence, which hold watches.mu across the shards);
//     under pmu the room's mu is taken and released before any of them.
//   - Delivery holds a room's mu while it queues frames (room.deliver,
//     room.broadcast): conn.send takes qmu and nothing under it, then hands
//     the connection to a writer (a channel send that never blocks); a removal
//     is recorded under the connection's remMu (conn.removedBy), which
//     holds nothing either.
//   - User events (userevents.go) take their shard's mu and let it go
//     before they ask a room (hub.joined) or a connection (remMu).
//   - Leaves, taken at most under rmu and holding nothing else: the
//     poller's mu, the connection set's shards, admission.mu, the limiter's
//     shards, Server.mu, the hub's fmu (fetches of notified events),
//     socketIO.mu (handshakes in progress). A Socket.IO session's
//     rendering (sioSession.outgoing, in conn.send) takes no lock.
//
// NATS calls are made with no lock held (gap fills, fetches of notified
// events, a command's requests and publishes), under rmu (a command's
// rate-limit check, the presence report of finish), or under
// watches.mu or a hub shard (subscribe, unsubscribe); never under a room's
// mu or a qmu. conn.send never blocks, so nobody waits for a socket with a
// lock held.
//
// # Goroutines of the fan-out
//
//   - A conversation's lane runs its joins and leaves (conversations.go,
//     lanes.go); the connection's reader, or the poller's goroutine,
//     its end (conn.finish).
//   - One dispatcher per hub shard (hub.dispatch) runs room.receive for
//     every event of the rooms in its shard, one at a time in NATS order,
//     and the user and presence events of its shard; the fetches of
//     notified events run on goroutines of their own (hub.fetchEvent).
//   - The loads of a user's followed conversations run on a goroutine
//     each (hub.loadFollowed); a resync on one goroutine (hub.resyncLoop)
//     with resyncWorkers more for its requests, all counted in hub.fwg.
//   - Timers (time.AfterFunc) run room.fillGap and room.checkUnsure (at
//     most one of each armed per room: room.gapTimer, room.verify), each
//     receipt throttle's flush (receiptThrottle.timer) and each presence
//     throttle's (hub.flushPresence).
//   - room.afterDelivery runs on whichever of them delivered.
package edge
