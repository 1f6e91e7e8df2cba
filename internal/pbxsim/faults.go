package pbxsim

import (
	"net/http"
	"strconv"
)

// fault plays at most one fault for an API request, reporting whether it
// answered the request.
func (s *Sim) fault(w http.ResponseWriter, r *http.Request) bool {
	f := s.opt.Faults
	if f.ServerError+f.HTMLGateway+f.TooMany+f.Cut+f.Slow == 0 {
		return false
	}
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	pick := func(rate float64) bool {
		if x < rate {
			return true
		}
		x -= rate
		return false
	}
	switch {
	case pick(f.ServerError):
		s.Stats.Faults.Add(1)
		writeError(w, http.StatusInternalServerError, "Internal error")
	case pick(f.HTMLGateway):
		s.Stats.Faults.Add(1)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"))
	case pick(f.TooMany):
		s.Stats.Faults.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, f.RetryAfter.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "Too many requests")
	case pick(f.Cut):
		s.Stats.Faults.Add(1)
		cut(w)
	case pick(f.Slow):
		s.Stats.Faults.Add(1)
		if !sleep(r, f.SlowDelay) {
			return true
		}
		return false // then answer normally, late
	default:
		return false
	}
	return true
}

// cut sends the start of a 200 response that promises more body than it
// delivers, then closes the connection, as a dropped connection does.
func cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok { // under Options.Rewrite: the cut body is all there is
		w.Write([]byte(`{"type":"result","result":{"total":"12","records":[{"id":"1","start":"2026-0`))
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
	buf.WriteString(`{"type":"result","result":{"total":"12","records":[{"id":"1","start":"2026-0`)
	buf.Flush()
}
