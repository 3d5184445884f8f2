package files

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/switchboard-chat/switchboard/proto/names"
)

// ChunkSize is the size of a file's chunks: the object store's default.
const ChunkSize = 128 << 10

// putWindow is how many chunks an upload has in flight (published, not
// yet acknowledged): what it holds is putWindow chunks, whatever the
// file's size. The object store's own Put publishes every chunk without
// waiting (up to 4,000 in flight, which the server queues in memory when
// its store is slower than the client).
const putWindow = 4

// Put stores r as the file up describes, in the format of the object store
// (its Get and GetInfo read it): chunks of ChunkSize on a new nuid's
// subject, then the metadata, with the SHA-256 computed on the way. A read
// error (the body too large, the client gone) or a failed publish purges
// the chunks published: nothing is stored. js publishes; nc purges.
func Put(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, up Upload, r io.Reader) (*File, error) {
	id := nuid.Next()
	subj := chunkSubject(id)
	size, chunks, sum, err := putChunks(ctx, js, subj, r)
	if err == nil {
		info := jetstream.ObjectInfo{ObjectMeta: up.Meta(), Bucket: names.BucketFiles, NUID: id, Size: size, Chunks: chunks,
			Digest: "SHA-256=" + b64(sum)}
		info.Opts = &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}
		var seq uint64
		if seq, err = publishNewMeta(ctx, js, up, &info); err == nil {
			f, ok := FromInfo(up.Org, &info)
			if !ok {
				return nil, errors.New("files: stored metadata does not read back")
			}
			f.seq = seq
			return f, nil
		}
	}
	// With a context of its own: the upload's may be what ended.
	pctx, cancel := context.WithTimeout(context.Background(), chunkTimeout)
	defer cancel()
	if perr := purge(pctx, nc, subj); perr != nil {
		err = fmt.Errorf("%w (and its chunks stay until the bucket's max age: %v)", err, perr)
	}
	return nil, err
}

// putChunks publishes r's bytes in chunks, putWindow in flight at most.
func putChunks(ctx context.Context, js jetstream.JetStream, subj string, r io.Reader) (size uint64, chunks uint32, sum []byte, err error) {
	h := sha256.New()
	var bufs [putWindow][]byte
	var inflight [putWindow]jetstream.PubAckFuture
	defer func() {
		if err != nil {
			settle(inflight[:]) // before the caller purges: none lands after it
		}
	}()
	for i := 0; ; i++ {
		slot := i % putWindow
		if f := inflight[slot]; f != nil {
			inflight[slot] = nil // its channels deliver once
			if err := waitAck(ctx, f); err != nil {
				return 0, 0, nil, err
			}
		}
		if bufs[slot] == nil {
			bufs[slot] = make([]byte, ChunkSize)
		}
		n, rerr := io.ReadFull(r, bufs[slot])
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return 0, 0, nil, rerr
		}
		if n > 0 {
			h.Write(bufs[slot][:n])
			if inflight[slot], err = js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: bufs[slot][:n]}); err != nil {
				return 0, 0, nil, err
			}
			size, chunks = size+uint64(n), chunks+1
		}
		if rerr != nil { // EOF: the last chunk is out
			for i, f := range inflight {
				if f != nil {
					inflight[i] = nil
					if err := waitAck(ctx, f); err != nil {
						return 0, 0, nil, err
					}
				}
			}
			return size, chunks, h.Sum(nil), nil
		}
	}
}

// settle waits, for up to chunkTimeout, for the chunks still in flight of
// an upload that failed, whatever their outcome.
func settle(inflight []jetstream.PubAckFuture) {
	ctx, cancel := context.WithTimeout(context.Background(), chunkTimeout)
	defer cancel()
	for _, f := range inflight {
		if f != nil {
			_ = waitAck(ctx, f)
		}
	}
}

// waitAck waits for a chunk's acknowledgement.
func waitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishNewMeta publishes a new file's metadata, expecting none on its
// subject (fileIds are new: a second upload of one id must fail).
func publishNewMeta(ctx context.Context, js jetstream.JetStream, up Upload, info *jetstream.ObjectInfo) (uint64, error) {
	return publishMeta(ctx, js, &File{Upload: up}, info)
}

// purge removes one subject's messages from chat_files' stream.
func purge(ctx context.Context, nc *nats.Conn, subject string) error {
	body, err := json.Marshal(struct {
		Filter string `json:"filter"`
	}{subject})
	if err != nil {
		return err
	}
	m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+Stream, body)
	if err != nil {
		return err
	}
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	if !resp.Success {
		return errors.New("purge not acknowledged")
	}
	return nil
}
