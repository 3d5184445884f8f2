module github.com/switchboard-chat/switchboard/tools/faults

go 1.26.8

require (
	github.com/gobwas/ws v1.5.0
	github.com/switchboard-chat/switchboard/kit v0.0.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
)

replace (
	github.com/switchboard-chat/switchboard/kit => ../../kit
	github.com/switchboard-chat/switchboard/proto => ../../proto
)
