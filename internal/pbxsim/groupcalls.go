package pbxsim

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// GroupFields says which of the CDR's group fields call records carry.
// Which ones a real PBX's API sends is not known (docs/pbx-api.md, "How a
// call reaches a group"); each is a switch, so that the reporting views
// can be checked against every plausible combination.
type GroupFields struct {
	// App is how lastapp and lastdata are sent: "queue" (the default: a
	// group's legs ran the Queue application, lastdata "<group id>,t,,,<the
	// dialplan's timeout>"; other legs Dial or VoiceMail), "dial" (Dial on
	// every leg, lastdata "SIP/<dst>,60,tT") or "none" (neither field).
	App string
	// GroupIDs sends srcgrp and dstgrp: the group's id in dstgrp on its
	// legs, "0" elsewhere.
	GroupIDs bool
	// UniqueID sends uniqueid, Asterisk's "<epoch>.<n>", shared by a call's legs.
	UniqueID bool
	// DContext sends dcontext ("inbound" for calls from outside, else "users").
	DContext bool
	// QueueLeg writes, for a queue (not a ring-all group), the caller's own
	// leg: answered by the PBX at once to play music on hold, no phone
	// rung, until the caller leaves the queue (Asterisk's Queue after an
	// Answer). Only a member's answer answers the call (docs/reporting.md).
	QueueLeg bool
	// Malformed spoils some of the group calls' legs the way a PBX may,
	// without changing what happened: the answering leg's answer sent
	// empty, an unanswered leg's end sent as MySQL's zero date, lastdata
	// without the Queue timeout, a ring-all member's unanswered leg
	// without its start, dstgrp "-1" or empty for no group. Each leg's
	// Call.Malformed says which (docs/reporting.md: the views fall back,
	// a leg without a start is a call of its own unless uniqueid ties it,
	// and data_quality counts them).
	Malformed bool
}

// simGroup is a call group of the simulator: callGroups serves it and the
// call history rings it.
type simGroup struct {
	id, title, number, strategy string
	members                     []int // colleagues' indexes
	ring                        int64 // settings.timeout: how long a member (queue) or everyone (ringall) rings a round
	timeout                     int64 // the dialplan's timeout (the Queue application's fifth argument): the call leaves the group
}

var simGroups = []simGroup{
	{"1", "Sales", "600", "ringall", []int{0, 1, 2}, 30, 90},
	{"2", "Support queue", "700", "rrmemory", []int{2, 3, 4, 5}, 15, 150},
	{"3", "Reception", "800", "linear", []int{0, 5}, 20, 75},
}

// Outcomes of a call offered to a group (docs/reporting.md).
const (
	Answered   = "answered"
	Abandoned  = "abandoned"
	Overflowed = "overflowed"
)

// GroupCall is the ground truth of a call offered to a ring group or queue:
// what the simulator played, from which the CDR legs were written.
type GroupCall struct {
	CallID     int64  // the call's first leg (Call.CallID of each of its legs)
	FirstLegID int64  // the first of the group's legs
	GroupID    string // the call_groups id
	Number     string // the group's number, dialled
	Strategy   string
	Scenario   string    // what happened, in words
	Offered    time.Time // the start of the group's first leg
	Outcome    string    // Answered, Abandoned or Overflowed
	AnsweredBy string    // the member's extension, when answered
	Wait       int64     // seconds from the offer to the answer, else until the call left the group
	Talk       int64     // the answering leg's talk time
	Legs       int       // the group's legs
	Members    []string  // the members whose phone rang, each once
	// NextDestination is where the call went after the group: another
	// group's title, voicemail's extension, or the colleague it was
	// transferred to after the answer (TransferredOut).
	NextDestination string
	TransferredOut  bool
}

// planLeg is one CDR leg of a planned call, times in seconds from the
// call's start.
type planLeg struct {
	start, answer, end int64     // answer < 0: not answered
	group              *simGroup // nil: the leg reached no group
	member             string    // the extension rung ("": none)
	dst, toName        string
	app, data          string // lastapp and lastdata with App "queue"
	malformed          string
}

// plan is the call of several legs that ends a block of records.
type plan struct {
	legs   []planLeg // sorted by end: the i-th is record first+p0+i
	p0     int64
	start  time.Time // the instant of offset 0, the call's start
	caller string
	name   string
	truth  []GroupCall
	offset []int64 // of each truth's offer
}

// groupPlan returns the group call that ends the block whose first record
// is first, h the block's hash: a pure function of the seed, the options
// and first. Its legs take the block's last ids, in the order they ended,
// as a PBX writes a call's CDR rows together when the call ends: the
// call's end falls strictly between the end of the record before its
// first leg and the end of the next block's first record, and its start
// is derived backwards. A leg that stopped ringing early may so end
// before records with lower ids; calls' ends grow with ids.
func (s *Sim) groupPlan(first int64, h uint64) *plan {
	g := &simGroups[(h>>24)%uint64(len(simGroups))]
	g2 := &simGroups[((h>>24)+1)%uint64(len(simGroups))]
	n := max(s.opt.Colleagues, 1)
	ext := func(i int) string { return extension(201+i%n, s.opt.LongExtensions) }
	r := splitmix64(h ^ 0x6a09e667f3bcc908)
	draw := func(lo, hi int64) int64 { // lo..hi, from new bits each time
		r = splitmix64(r)
		return lo + int64(r%uint64(hi-lo+1))
	}
	p := &plan{caller: "+39" + strconv.FormatUint(3000000000+(h>>12)%999999999, 10), name: personName(h >> 8)}
	ring := func(g *simGroup, at, wait int64, outcome string, talk, from int64) *GroupCall {
		return p.ring(g, at, wait, outcome, talk, from, ext, s.opt.GroupFields.QueueLeg)
	}
	// What happens: seven calls in ten answered, most within 20 s.
	wait := draw(1, 20)
	if draw(0, 5) == 0 {
		wait = draw(21, 50)
	}
	talk := draw(20, 90)
	if draw(0, 2) > 0 {
		talk = draw(60, 600)
	}
	switch k := draw(0, 99); {
	case k < 70:
		gc := ring(g, 0, wait, Answered, talk, draw(0, 3))
		gc.Scenario = "answered"
		if draw(0, 4) == 0 {
			to := ext(int(draw(6, int64(max(n-1, 6))))) // a colleague in no group
			end, answer := wait+talk, wait+talk+draw(2, 8)
			gc.Scenario = "answered, then transferred to a colleague"
			gc.TransferredOut, gc.NextDestination = true, to
			p.legs = append(p.legs, planLeg{start: end, answer: answer, end: answer + draw(10, 200), member: to, dst: to,
				toName: personName(h >> 28), app: "Dial", data: "SIP/" + to + ",60,tT"})
		}
	case k < 77:
		ring(g, 0, 3, Abandoned, 0, draw(0, 3)).Scenario = "the caller hung up after 3 s"
	case k < 85:
		ring(g, 0, 60, Abandoned, 0, draw(0, 3)).Scenario = "the caller hung up after 60 s"
	case k < 93:
		gc := ring(g, 0, g.timeout, Overflowed, 0, draw(0, 3))
		vm := ext(g.members[0])
		gc.Scenario, gc.NextDestination = "nobody answered: voicemail at the dialplan's timeout", vm
		p.legs = append(p.legs, planLeg{start: g.timeout, answer: g.timeout, end: g.timeout + draw(5, 40), dst: vm,
			toName: "Voicemail " + vm, app: "VoiceMail", data: vm + "@default"})
	default:
		gc := ring(g, 0, g.timeout, Overflowed, 0, draw(0, 3))
		gc.Scenario, gc.NextDestination = "nobody answered: sent to another group at the dialplan's timeout", g2.title
		if draw(0, 2) == 0 {
			ring(g2, g.timeout, 60, Abandoned, 0, draw(0, 3)).Scenario = "overflowed from another group; the caller hung up after 60 s"
		} else {
			ring(g2, g.timeout, draw(1, 30), Answered, draw(20, 300), draw(0, 3)).Scenario = "overflowed from another group, answered"
		}
	}
	s.placePlan(p, first, h)
	if s.opt.GroupFields.Malformed {
		p.spoil(splitmix64(h ^ 0x3c6ef372fe94f82b))
	}
	return p
}

// placePlan places p's legs on the block's last ids, in the order they
// end, and its call in time (see groupPlan), and gives its truths their
// ids and offer times.
func (s *Sim) placePlan(p *plan, first int64, h uint64) {
	if len(p.legs) > legsBlock-1 {
		panic(fmt.Sprintf("pbxsim: a group call of %d legs: a block holds %d", len(p.legs), legsBlock-1))
	}
	slices.SortStableFunc(p.legs, func(a, b planLeg) int { return cmp.Compare(a.end, b.end) })
	p.p0 = legsBlock - int64(len(p.legs))
	lo, hi := s.callEnd(first+p.p0-1), s.callEnd(first+legsBlock) // the call ends strictly between
	end := lo + 1 + int64(splitmix64(h^0xbb67ae8584caa73b)%uint64(hi-lo-1))
	p.start = time.Unix(end-p.legs[len(p.legs)-1].end, 0).UTC()
	for i := range p.truth {
		t := &p.truth[i]
		t.CallID = first + p.p0
		t.Offered = p.start.Add(time.Duration(p.offset[i]) * time.Second)
		for j := len(p.legs) - 1; j >= 0; j-- {
			if l := p.legs[j]; l.group != nil && l.group.id == t.GroupID {
				t.FirstLegID = first + p.p0 + int64(j)
			}
		}
	}
}

// ring adds the legs of group g ringing from offset at for wait seconds,
// and the call's truth in g, which it returns (valid until the next
// ring). An answered call is answered by a member at at+wait, who talks
// talk seconds; a ringall group's member from%members answers. A queue
// rings its members in turn, g.ring seconds each (at most three turns, two
// with ownLeg, the last ringing until the end), linear from the first,
// rrmemory from member from%members. With ownLeg a queue also writes the caller's own leg, answered
// by the PBX at once (music on hold), until the caller leaves the queue.
func (p *plan) ring(g *simGroup, at, wait int64, outcome string, talk, from int64, ext func(int) string, ownLeg bool) *GroupCall {
	gc := GroupCall{GroupID: g.id, Number: g.number, Strategy: g.strategy, Outcome: outcome, Wait: wait}
	leg := func(start, end int64, member string) planLeg {
		return planLeg{start: at + start, answer: -1, end: at + end, group: g, member: member, dst: g.number, toName: g.title,
			app: "Queue", data: g.id + ",t,,," + strconv.FormatInt(g.timeout, 10)}
	}
	add := func(start, end int64, member string, answers bool) {
		l := leg(start, end, member)
		if answers {
			l.answer, l.end = at+wait, at+wait+talk
			gc.AnsweredBy, gc.Talk = member, talk
		}
		p.legs = append(p.legs, l)
		gc.Legs++
		if !slices.Contains(gc.Members, member) {
			gc.Members = append(gc.Members, member)
		}
	}
	if g.strategy == "ringall" {
		who := int(from) % len(g.members)
		for i, m := range g.members {
			add(0, wait, ext(m), outcome == Answered && i == who)
		}
	} else {
		next := 0
		if g.strategy == "rrmemory" {
			next = int(from) % len(g.members)
		}
		most := int64(3) // so that two groups' legs fit in a block
		if ownLeg {
			most = 2
		}
		turns := min(max((wait+g.ring-1)/g.ring, 1), most)
		for i := int64(0); i < turns; i++ {
			end := min((i+1)*g.ring, wait)
			if i == turns-1 {
				end = wait
			}
			add(i*g.ring, end, ext(g.members[(next+int(i))%len(g.members)]), outcome == Answered && i == turns-1)
		}
		if ownLeg {
			l := leg(0, wait, "")
			l.answer = at
			p.legs = append(p.legs, l)
			gc.Legs++
		}
	}
	p.truth = append(p.truth, gc)
	p.offset = append(p.offset, at)
	return &p.truth[len(p.truth)-1]
}

// fill makes c, record first+p.p0+i, the plan's i-th leg.
func (p *plan) fill(c *Call, first int64) {
	l := p.legs[c.ID-first-p.p0]
	at := func(off int64) time.Time { return p.start.Add(time.Duration(off) * time.Second) }
	c.CallID, c.Src, c.FromName, c.Dst, c.ToName = first+p.p0, p.caller, p.name, l.dst, l.toName
	c.Channel, c.DstChannel = channel(p.caller, first+p.p0), ""
	if l.member != "" {
		c.DstChannel = channel(l.member, c.ID)
	}
	c.Start, c.End, c.Type, c.Cost = at(l.start), at(l.end), "call", "0"
	c.Duration, c.Billsec = l.end-l.start, 0
	c.Answer, c.Disposition = time.Time{}, "NO ANSWER"
	if l.answer >= 0 {
		c.Answer, c.Disposition, c.Billsec = at(l.answer), "ANSWERED", l.end-l.answer
	}
	c.Group = ""
	if l.group != nil {
		c.Group = l.group.id
	}
	c.LastApp, c.LastData = l.app, l.data
	c.UniqueID = fmt.Sprintf("%d.%d", p.start.Unix(), c.CallID)
	c.Malformed = l.malformed
}

// spoil makes some legs of the plan malformed (GroupFields.Malformed), in
// one call in three: an answer sent empty, an end sent as MySQL's zero
// date, lastdata without the Queue timeout, and the start of at most one
// leg of each ring-all group that did not answer sent empty (the others
// keep the offer's time).
func (p *plan) spoil(h uint64) {
	if h%3 != 0 {
		return
	}
	noStart := map[*simGroup]bool{}
	for i := range p.legs {
		l := &p.legs[i]
		if l.group == nil {
			continue
		}
		switch x := splitmix64(h+uint64(i)) % 6; {
		case x == 0 && l.answer >= 0:
			l.malformed = "answer"
		case x == 1 && l.answer < 0:
			l.malformed = "end"
		case x == 2 && l.answer < 0:
			l.malformed = "lastdata"
		case x == 3 && l.answer < 0 && l.group.strategy == "ringall" && !noStart[l.group]:
			l.malformed, noStart[l.group] = "start", true
		}
	}
}

// lastPlan is the plan of one block, kept because a block's eight
// records are mostly built one after another. A plan is never changed
// once made, so it may be shared.
type lastPlan struct {
	first int64
	p     *plan
}

// planOf is groupPlan(first, h), from the last one made when it is the same.
func (s *Sim) planOf(first int64, h uint64) *plan {
	if c := s.lastPlan.Load(); c != nil && c.first == first {
		return c.p
	}
	p := s.groupPlan(first, h)
	s.lastPlan.Store(&lastPlan{first, p})
	return p
}

// GroupCalls returns the ground truth of the calls offered to a group
// among the calls now on the PBX, by first leg. A call one of whose legs
// is not on the PBX (deleted, or not yet inserted) is left out.
func (s *Sim) GroupCalls() []GroupCall {
	n := s.calls.Load()
	del := s.deletedIDs()
	var out []GroupCall
	for first := int64(1); first <= n; first += legsBlock {
		p := s.blockPlan(first)
		if p == nil || first+legsBlock-1 > n {
			continue
		}
		gone := false
		for id := first + p.p0; id < first+legsBlock; id++ {
			if _, found := slices.BinarySearch(del, id); found {
				gone = true
			}
		}
		if !gone {
			out = append(out, p.truth...)
		}
	}
	return out
}
