// Command pbxsim serves a simulated Wildix PBX: its REST API, its OAuth 2.0
// server and its faults, for demos, tests and benchmarks without a PBX.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "pbxsim:", err)
		os.Exit(2)
	}
}

// run parses the simulator's flags and serves. It is long (193 lines)
// because it declares every switch of pbxsim.Options as a flag, one line
// each, beside its help text; the serving part is short.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pbxsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr       = fs.String("addr", "127.0.0.1:8080", "listen address")
		seed       = fs.Int64("seed", 1, "seed of the generated data")
		calls      = fs.Int64("calls", 10000, "call records at start (0: an empty PBX)")
		gap        = fs.Duration("call-gap", 30*time.Second, "mean time between call ends")
		start      = fs.String("calls-start", "2026-01-01", "date (UTC) around which the first call ends")
		zone       = fs.String("timezone", "Europe/Rome", "the PBX's time zone")
		noTZ       = fs.Bool("omit-timezone-field", false, "leave the timezone offset out of call records")
		clientID   = fs.String("client-id", "wildix-export-demo", "OAuth Application ID")
		secret     = fs.String("client-secret", "demo-secret", "OAuth Secret key")
		redirects  = fs.String("redirect-uris", "http://127.0.0.1:8765/callback", "comma list of registered redirect URIs")
		ttl        = fs.Duration("token-ttl", time.Hour, "access token lifetime")
		rotate     = fs.Bool("rotate-refresh-tokens", true, "refresh tokens are single use")
		clientAuth = fs.String("client-auth", "body", "token endpoint client authentication: body (Basic refused, as real PBXes), both, basic")
		apiKey     = fs.String("api-key", "", "a static bearer key to accept")
		apiKeyFile = fs.String("api-key-file", "", "a file holding a static bearer key to accept")
		s2sApp     = fs.String("s2s", "", "an S2S app to accept, as id:name:secret")
		liveEvery  = fs.Int("live-insert-every", 0, "insert new calls after every N call-history requests (0: off)")
		liveBatch  = fs.Int("live-insert-batch", 3, "calls inserted each time by -live-insert-every")
		liveMax    = fs.Int64("live-insert-max", 0, "live inserts stop after this many calls in all (0: never)")
		extraField = fs.Bool("extra-call-field", false, "add a field to call records that the exporter's catalog does not know")
		callerIDs  = fs.Bool("caller-id-fields", false, "send the CDR's caller-id fields: clid (\"name\" <number>), c_from, c_to, dnid and did")
		extMember  = fs.Bool("external-group-member", false, "give the call group Support queue an external member with a name")
		groupApp   = fs.String("group-app", "queue", "lastapp/lastdata of call records: queue (a group's legs ran Queue, with the group and its timeout), dial (Dial on every leg), none (not sent)")
		groupIDs   = fs.Bool("group-ids", false, "send srcgrp and dstgrp (the group's id on its legs)")
		uniqueID   = fs.Bool("uniqueid", false, "send uniqueid, shared by a call's legs")
		dcontext   = fs.Bool("dcontext", false, "send dcontext")
		queueLeg   = fs.Bool("queue-leg", false, "queues write the caller's own leg, answered at once for music on hold, no phone rung")
		malformed  = fs.Bool("malformed-group-legs", false, "spoil some group legs as a PBX may: start or answer empty, end a zero date, lastdata without its timeout, dstgrp -1 or empty")
		ignoreF    = fs.String("ignore-filter", "", "comma list of fields whose filter[...] the PBX ignores, e.g. id or id,start")
		ignoreSort = fs.Bool("ignore-sort", false, "answer in the default order whatever sort and dir say")
		maxCount   = fs.Int("max-count", 0, "answer at most this many records a page (0: no cap)")
		total      = fs.String("total", "string", "how list answers carry result.total: string (as the PBX: a number only for Phonebooks), number, absent")
		toExcl     = fs.Bool("filter-to-exclusive", false, "filter[f][to] excludes its bound")
		fromExcl   = fs.String("filter-from-exclusive", "", "comma list of fields whose filter[f][from] excludes its bound, e.g. id")
		delAfter   = fs.Int("delete-after", 0, "delete call records right after the Nth call-history request (0: never)")
		delOldest  = fs.Int64("delete-oldest", 0, "with -delete-after: the oldest N calls are deleted (a retention purge)")
		delRandom  = fs.Int("delete-random", 0, "with -delete-after: N other calls, picked by -seed, are deleted")
		f5xx       = fs.Float64("fault-5xx", 0, "rate of 500 answers")
		fHTML      = fs.Float64("fault-html502", 0, "rate of 502 answers with an HTML body")
		f429       = fs.Float64("fault-429", 0, "rate of 429 answers with Retry-After")
		fCut       = fs.Float64("fault-cut", 0, "rate of connections cut mid-body")
		fSlow      = fs.Float64("fault-slow", 0, "rate of slow answers")
		slowDelay  = fs.Duration("slow-delay", 2*time.Second, "delay of a slow answer")
		latency    = fs.Duration("latency", 0, "latency added to every API request")
		cacheJSON  = fs.Bool("cache-call-json", false, "keep each call record's JSON once built (about 1 KB a call): cheaper pages, for benchmarks")
		tlsCert    = fs.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with; needs -tls-key")
		tlsKey     = fs.String("tls-key", "", "PEM private key of -tls-cert")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pbxsim [flags]\n\nServes a simulated Wildix PBX (REST API, OAuth 2.0, faults) on -addr.\nGround truth: GET /_sim/truth/{call_history|group_calls|colleagues|phonebooks|contacts|devices}\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fmt.Errorf("-timezone %q: %w", *zone, err)
	}
	st, err := time.Parse("2006-01-02", *start)
	if err != nil {
		return fmt.Errorf("-calls-start %q: expected YYYY-MM-DD", *start)
	}
	switch *total {
	case "string", "number", "absent":
	default:
		return fmt.Errorf("-total %q: expected string, number or absent", *total)
	}
	switch *groupApp {
	case "queue", "dial", "none":
	default:
		return fmt.Errorf("-group-app %q: expected queue, dial or none", *groupApp)
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"calls", *calls}, {"live-insert-every", int64(*liveEvery)}, {"live-insert-max", *liveMax}, {"max-count", int64(*maxCount)},
		{"delete-after", int64(*delAfter)}, {"delete-oldest", *delOldest}, {"delete-random", int64(*delRandom)}} {
		if c.n < 0 {
			return fmt.Errorf("-%s %d: expected 0 or more", c.name, c.n)
		}
	}
	if *liveBatch < 1 {
		return fmt.Errorf("-live-insert-batch %d: expected 1 or more", *liveBatch)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"call-gap", *gap}, {"token-ttl", *ttl}, {"slow-delay", *slowDelay}, {"latency", *latency}} {
		if d.d < 0 || d.d == 0 && (d.name == "call-gap" || d.name == "token-ttl") {
			return fmt.Errorf("-%s %s: expected a positive duration", d.name, d.d)
		}
	}
	for _, r := range []struct {
		name string
		rate float64
	}{{"fault-5xx", *f5xx}, {"fault-html502", *fHTML}, {"fault-429", *f429}, {"fault-cut", *fCut}, {"fault-slow", *fSlow}} {
		if !(r.rate >= 0 && r.rate <= 1) {
			return fmt.Errorf("-%s %v: expected a rate from 0 to 1", r.name, r.rate)
		}
	}
	if *delAfter == 0 && (*delOldest > 0 || *delRandom > 0) {
		return errors.New("-delete-oldest and -delete-random need -delete-after: the request after which the calls go")
	}
	ignored, exclusive := fieldList(*ignoreF), fieldList(*fromExcl)
	nCalls := *calls
	if nCalls == 0 {
		nCalls = -1 // Options takes 0 for its default and below 0 for none
	}
	opt := pbxsim.Options{
		Seed: *seed, Calls: nCalls, CallGap: *gap, CallsStart: st, Location: loc, OmitTimezoneField: *noTZ,
		Clients:             []pbxsim.Client{{ID: *clientID, Secret: *secret, RedirectURIs: strings.Split(*redirects, ",")}},
		AccessTokenTTL:      *ttl,
		RotateRefreshTokens: *rotate,
		ClientAuth:          *clientAuth,
		LiveInsertEvery:     *liveEvery,
		LiveInsertBatch:     *liveBatch,
		LiveInsertMax:       *liveMax,
		ExtraCallField:      *extraField,
		CallerIDFields:      *callerIDs,
		ExternalGroupMember: *extMember,
		GroupFields:         pbxsim.GroupFields{App: *groupApp, GroupIDs: *groupIDs, UniqueID: *uniqueID, DContext: *dcontext, QueueLeg: *queueLeg, Malformed: *malformed},
		IgnoreFilter:        ignored,
		IgnoreSort:          *ignoreSort,
		MaxCount:            *maxCount,
		Total:               *total,
		FilterToExclusive:   *toExcl,
		FilterFromExclusive: exclusive,
		DeleteAfter:         *delAfter,
		DeleteOldest:        *delOldest,
		DeleteRandom:        *delRandom,
		CacheCallJSON:       *cacheJSON,
		Faults: pbxsim.Faults{ServerError: *f5xx, HTMLGateway: *fHTML, TooMany: *f429, Cut: *fCut, Slow: *fSlow,
			SlowDelay: *slowDelay, Latency: *latency},
		Log: slog.New(slog.NewTextHandler(stderr, nil)),
	}
	if *apiKey != "" {
		opt.APIKeys = []string{*apiKey}
	}
	if *apiKeyFile != "" {
		b, err := os.ReadFile(*apiKeyFile)
		if err != nil {
			return fmt.Errorf("-api-key-file: %w", err)
		}
		opt.APIKeys = append(opt.APIKeys, strings.TrimSpace(string(b)))
	}
	if *s2sApp != "" {
		p := strings.SplitN(*s2sApp, ":", 3)
		if len(p) != 3 {
			return fmt.Errorf("-s2s %q: expected id:name:secret", *s2sApp)
		}
		opt.S2SApps = []pbxsim.S2SApp{{ID: p[0], Name: p[1], Secret: p[2]}}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	sim := pbxsim.New(opt)
	for _, l := range []struct {
		flag, value string
		fields      []string
	}{{"ignore-filter", *ignoreF, ignored}, {"filter-from-exclusive", *fromExcl, exclusive}} {
		for _, f := range l.fields {
			if !slices.Contains(sim.CallFields(), f) {
				return fmt.Errorf("-%s %q: %q is not a call record field (%s)", l.flag, l.value, f, strings.Join(sim.CallFields(), ", "))
			}
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert, -tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln, scheme = tls.NewListener(ln, srv.TLSConfig), "https"
	}
	fmt.Fprintf(stdout, "pbxsim listening on %s://%s\n", scheme, ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// fieldList reads a comma list of field names.
func fieldList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
