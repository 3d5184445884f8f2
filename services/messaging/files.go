package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
)

// Files (docs/protocol.md section 7). The edge streams uploads into the
// chat_files object store and serves them; messaging says who may
// (fileAccess), attaches files to messages (attach), removes the files of a
// deleted message (removeFiles) and the uploads never attached (the
// sweeper). A file's attached state is its metadata's claim, written with a
// compare-and-set on its metadata message (files.SetAttached), so that a
// file is attached to one message at most, and the sweeper's delete, also a
// compare-and-set, never removes a file that a send claimed meanwhile.

// maxAttachments bounds a message's attachments.
const maxAttachments = 10

// claimAttempts bounds the compare-and-set retries of one claim (another
// send or the sweeper changed the metadata in between).
const claimAttempts = 4

var errFileNotFound = errs.NotFound("file")

// fileAccess answers the edge's question before an upload to a
// conversation or a download of one of its files: participants only;
// anyone else, an unknown conversation and another organization's get
// not_found alike.
func (s *Service) fileAccess(ctx context.Context, req *chatv1.FileAccessRequest) (*chatv1.FileAccessResponse, error) {
	p := req.Principal
	var f errs.Fields
	f.ID("conversationId", req.ConversationId)
	if err := f.Err(); err != nil {
		return nil, err
	}
	if p.System {
		return nil, errs.NotFound("conversation")
	}
	if _, err := s.memberConv(ctx, p, req.ConversationId); err != nil {
		var e *errs.Error
		if errors.As(err, &e) && (e.Code == errs.CodeForbidden || e.Code == errs.CodeNotFound) {
			return nil, errs.NotFound("conversation")
		}
		return nil, err
	}
	return &chatv1.FileAccessResponse{}, nil
}

// checkAttachments validates a send's file ids: at most maxAttachments,
// ids, no repeats.
func checkAttachments(f *errs.Fields, ids []string) {
	if len(ids) > maxAttachments {
		f.Add("attachments", fmt.Sprintf("at most %d fileIds", maxAttachments))
		return
	}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		f.ID(fmt.Sprintf("attachments[%d]", i), id)
		if seen[id] {
			f.Add(fmt.Sprintf("attachments[%d]", i), "repeats a fileId")
		}
		seen[id] = true
	}
}

// attach claims the files a send names for it (claim: files.Claim) and
// describes them for its event. Each must be an upload of the sender to
// this conversation, not expired, younger than FileUnattachedTTL, and
// attached to no other message; else the send is not_found, and what this
// call claimed is released. fresh are the files this call claimed (not
// those a resend of the same message had claimed before).
func (s *Service) attach(ctx context.Context, p *chatv1.Principal, conv string, ids []string, claim string) (atts []*chatv1.Attachment, fresh []*files.File, err error) {
	now := s.cfg.Now()
	for _, id := range ids {
		f, isNew, err := s.claimFile(ctx, p, conv, id, claim, now)
		if err != nil {
			s.release(fresh)
			return nil, nil, err
		}
		if isNew {
			fresh = append(fresh, f)
		}
		atts = append(atts, &chatv1.Attachment{FileId: id, Name: f.Name, Size: f.Size, ContentType: f.ContentType})
	}
	return atts, fresh, nil
}

// claimFile claims one file, or finds it claimed by this very message.
func (s *Service) claimFile(ctx context.Context, p *chatv1.Principal, conv, id, claim string, now time.Time) (*files.File, bool, error) {
	for range claimAttempts {
		f, err := s.lookupFile(ctx, p.Org, id)
		if err != nil {
			return nil, false, err
		}
		switch {
		case f.Conversation != conv || f.Uploader != p.User || p.System:
			return nil, false, errFileNotFound
		case f.Attached == claim:
			return f, false, nil
		case f.Attached != "" || now.Sub(f.Created) >= s.cfg.FileUnattachedTTL:
			return nil, false, errFileNotFound
		}
		wctx, cancel := write(ctx)
		err = files.SetAttached(wctx, s.js, f, claim)
		cancel()
		if errors.Is(err, files.ErrChanged) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("claim a file: %w", err)
		}
		return f, true, nil
	}
	return nil, false, errs.New(errs.CodeUnavailable, "file is busy; retry with the same clientMsgId")
}

// lookupFile reads a file of org: not_found when there is none.
func (s *Service) lookupFile(ctx context.Context, org, id string) (*files.File, error) {
	f, err := read(ctx, func(ctx context.Context) (*files.File, error) { return files.Lookup(ctx, s.nc, org, id) })
	if errors.Is(err, files.ErrNotFound) {
		return nil, errFileNotFound
	}
	return f, err
}

// release gives back claims of a send that stored nothing, so that the
// files may be attached again (or swept). Best effort: a file whose release
// fails stays claimed, kept until the bucket's max age.
func (s *Service) release(claimed []*files.File) {
	for _, f := range claimed {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		if err := files.SetAttached(ctx, s.js, f, ""); err != nil && !errors.Is(err, files.ErrChanged) {
			s.log.Warn("release a file claim", "org", f.Org, "err", err)
		}
		cancel()
	}
}

// settleClaims runs after a send's append: a refusal (an *errs.Error:
// nothing was stored) releases the files this send claimed; a duplicate
// releases those the original message does not hold (a resend that named
// other files). Any other failure may have stored the message: its claims
// stay, and the client's retry with the same clientMsgId finds them.
func (s *Service) settleClaims(ctx context.Context, org, conv string, res appended, err error, fresh []*files.File) {
	if len(fresh) == 0 {
		return
	}
	var refused *errs.Error
	switch {
	case err != nil && errors.As(err, &refused):
		s.release(fresh)
	case err == nil && res.duplicate:
		ev, rerr := s.eventAt(ctx, org, conv, res.seq)
		if rerr != nil || ev == nil {
			return
		}
		held := map[string]bool{}
		for _, a := range ev.GetMessageNew().GetAttachments() {
			held[a.FileId] = true
		}
		var extra []*files.File
		for _, f := range fresh {
			if !held[f.ID] {
				extra = append(extra, f)
			}
		}
		s.release(extra)
	}
}

// Removal of a deleted message's files, in the background after the delete
// is stored: removeAttempts tries, removeBackoff apart, then a log line
// (the file then expires with the bucket's max age).
const (
	removeAttempts = 3
	removeBackoff  = time.Second
)

// removeFiles deletes the files of the message stored at seq (a message
// just deleted), in the background.
func (s *Service) removeFiles(org, conv string, seq uint64) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx := s.bg
		ev, err := s.eventAt(ctx, org, conv, seq)
		if err != nil || ev == nil {
			if err != nil {
				s.log.Warn("files of a deleted message: read the message", "org", org, "err", err)
			}
			return
		}
		for _, a := range ev.GetMessageNew().GetAttachments() {
			s.removeFile(ctx, org, a.FileId)
		}
	}()
}

// removeFile deletes one file, retrying failures.
func (s *Service) removeFile(ctx context.Context, org, id string) {
	var err error
	for attempt := range removeAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(removeBackoff << (attempt - 1)):
			}
		}
		var f *files.File
		if f, err = files.Lookup(ctx, s.nc, org, id); errors.Is(err, files.ErrNotFound) {
			return // gone already
		}
		if err == nil {
			wctx, cancel := write(ctx)
			err = files.Delete(wctx, s.js, s.nc, f)
			cancel()
		}
		if err == nil {
			s.filesRemoved.WithLabelValues("deleted_message").Inc()
			return
		}
	}
	s.log.Warn("files of a deleted message: delete failed; it expires with the bucket's max age", "org", org, "err", err)
}

// sweepFiles removes, every FileSweepInterval, the uploads never attached
// within FileUnattachedTTL. Every instance runs it: a delete is a
// compare-and-set (a second sweeper's, or a send's claim, makes it lose
// harmlessly), and one pass reads the bucket's metadata in batches, one
// direct get per batch.
func (s *Service) sweepFiles(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FileSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sweepOnce(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("file sweep", "err", err)
			}
		}
	}
}

// sweepBatch is how many files' metadata one direct get of a sweep reads.
const sweepBatch = 256

// sweepOnce is one pass of the sweeper.
func (s *Service) sweepOnce(ctx context.Context) error {
	cutoff := s.cfg.Now().Add(-s.cfg.FileUnattachedTTL)
	var stale []*files.File
	err := files.Each(ctx, s.nc, sweepBatch, func(f *files.File) bool {
		if f.Attached == "" && f.Created.Before(cutoff) {
			stale = append(stale, f)
		}
		return len(stale) < sweepMaxPerPass
	})
	if err != nil {
		return err
	}
	for _, f := range stale {
		wctx, cancel := write(ctx)
		err := files.Delete(wctx, s.js, s.nc, f)
		cancel()
		switch {
		case err == nil:
			s.filesRemoved.WithLabelValues("unattached").Inc()
		case errors.Is(err, files.ErrChanged):
			// claimed, or swept by another instance, meanwhile
		case natsx.IsUnavailable(err):
			return err
		default:
			s.log.Warn("file sweep: delete", "org", f.Org, "err", err)
		}
	}
	return nil
}

// sweepMaxPerPass bounds the deletes of one pass (and what it holds); the
// next pass goes on.
const sweepMaxPerPass = 1000
