package natsx

// For the tests in natsx_test.
var (
	ParsePubAck = parsePubAck
	ScanPubAck  = scanPubAck
)
