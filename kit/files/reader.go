package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// chunkTimeout bounds the read of one chunk.
const chunkTimeout = 5 * time.Second

// ErrTruncated is a file whose chunks end before its size: purged or
// expired while it was read.
var ErrTruncated = errors.New("file chunks missing")

// Reader streams a file's bytes [offset, offset+length) chunk by chunk,
// one direct get per chunk, so that it holds one chunk at a time whatever
// the file's size and however slowly its caller reads (a consumer would
// push up to its flow-control window, 32 MiB, into the client). Chunks
// before offset are read and skipped: the stream has no index by position.
// It is not safe for concurrent use.
type Reader struct {
	ctx    context.Context
	nc     *nats.Conn
	subj   string
	seq    uint64 // the next chunk is at or after it
	skip   uint64 // bytes still to drop before offset
	left   uint64 // bytes still to return
	buf    []byte
	chunks int // read so far
}

// NewReader returns a Reader of f's bytes from offset, length of them
// (the caller checked offset+length <= f.Size).
func NewReader(ctx context.Context, nc *nats.Conn, f *File, offset, length uint64) *Reader {
	return &Reader{ctx: ctx, nc: nc, subj: chunkSubject(f.info.NUID), seq: 1, skip: offset, left: length}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.left == 0 {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next reads the next chunk into buf, cut to the range.
func (r *Reader) next() error {
	ctx, cancel := context.WithTimeout(r.ctx, chunkTimeout)
	defer cancel()
	m, ok, err := natsx.DirectNext(ctx, r.nc, Stream, r.subj, r.seq)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w after %d chunks", ErrTruncated, r.chunks)
	}
	r.seq, r.chunks = m.Seq+1, r.chunks+1
	data := m.Data
	if r.skip > 0 {
		drop := min(r.skip, uint64(len(data)))
		data, r.skip = data[drop:], r.skip-drop
	}
	if uint64(len(data)) > r.left {
		data = data[:r.left]
	}
	r.left -= uint64(len(data))
	r.buf = data
	return nil
}

// Each calls fn with every file of the bucket (of every organization),
// reading the metadata in batches of up to batch, until fn returns false
// or ctx ends: the sweeper's listing, one direct get per batch.
func Each(ctx context.Context, nc *nats.Conn, batch int, fn func(*File) bool) error {
	all := "$O." + names.BucketFiles + ".M.>"
	for seq := uint64(1); ; {
		rctx, cancel := context.WithTimeout(ctx, chunkTimeout)
		b, err := natsx.GetBatch(rctx, nc, Stream, all, seq, batch)
		cancel()
		if err != nil {
			return err
		}
		for _, m := range b.Msgs {
			seq = m.Seq + 1
			if f, err := parse("", m); err == nil && !fn(f) {
				return nil
			}
		}
		if len(b.Msgs) == 0 || b.Pending == 0 {
			return nil
		}
	}
}
