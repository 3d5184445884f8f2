module github.com/switchboard-chat/switchboard/tools/loadgen

go 1.26.8

require (
	github.com/gobwas/ws v1.5.0
	github.com/nats-io/nats.go v1.55.0
	github.com/switchboard-chat/switchboard/kit v0.0.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace (
	github.com/switchboard-chat/switchboard/kit => ../../kit
	github.com/switchboard-chat/switchboard/proto => ../../proto
)
