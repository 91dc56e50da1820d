package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestLeaderSIGKILLMidBurst: three servers share PostgreSQL, four workers
// list all of them (each starting with a different one), and three
// clients submit one run at a time, each through a different server,
// moving to the next server when theirs does not answer. The leader is
// SIGKILLed mid-burst. Another server takes the lease; the killed
// server's workers move to the others, which adopt their runs; the runs it
// had claimed but not sent are requeued when its registration expires.
// Every acknowledged run succeeds exactly once.
func TestLeaderSIGKILLMidBurst(t *testing.T) {
	s := newScenario(t, "leader-sigkill-mid-burst-postgres")
	s.unloggedOK = 32
	storeURL := proc.PGURL(t)
	servers, apis := s.startServers(storeURL, 3)
	for i := range 4 {
		var list []string
		for j := range servers {
			list = append(list, servers[(i+j)%len(servers)].grpc)
		}
		worker(t, fmt.Sprintf("w%d", i+1), strings.Join(list, ","), "--capacity", "4")
	}

	// 16 slots of 0.2 s runs serve 80 runs/s; the clients submit faster,
	// so a backlog builds up for the kill to hit.
	stop := s.burst(apis, 3, 20*time.Millisecond, "0.2")
	awaitSucceeded(t, servers[0].api, 150, time.Minute)
	before, err := servers[0].api.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	var leader *clusterServer
	var rest []*clusterServer
	for _, n := range servers {
		if n.id == before.Leader {
			leader = n
		} else {
			rest = append(rest, n)
		}
	}
	if leader == nil {
		t.Fatalf("no leader: %+v", before)
	}
	var attached struct{ Items []struct{ ID string } }
	leader.api.Do("GET", "/api/v1/workers?local=1", nil, &attached)
	moving := map[string]bool{}
	for _, w := range attached.Items {
		moving[w.ID] = true
	}
	s.metric("workers_on_leader", len(moving))
	ackedBefore := len(s.ackedIDs())
	fault := time.Now()
	leader.p.Kill()
	deadline := time.Now().Add(recoveryBound)
	for {
		c, err := rest[0].api.Cluster()
		if err == nil && c.Leader != "" && c.Leader != leader.id && c.Term > before.Term {
			s.recovery("new_leader", time.Since(fault))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader %v after killing %s: %+v %v", recoveryBound, leader.id, c, err)
		}
		time.Sleep(100 * time.Millisecond) // polling another process's state
	}
	time.Sleep(2 * time.Second) // clients keep submitting to the survivors
	unanswered := stop()
	s.metric("acked_before_kill", ackedBefore)
	s.metric("unanswered", unanswered)

	runs := s.settle(rest[0].api, 2*time.Minute)
	var acked, backlog, moved []proc.Run
	for _, id := range s.ackedIDs() {
		acked = append(acked, runs[id])
	}
	for _, r := range runs {
		if r.FinishedAt == nil || !r.FinishedAt.After(fault) {
			continue
		}
		if r.CreatedAt != nil && r.CreatedAt.Before(fault) {
			backlog = append(backlog, r) // submitted before the kill, finished after it
		}
		if moving[proc.Deref(r.WorkerID)] {
			moved = append(moved, r) // finished by a worker that was on the killed leader
		}
	}
	requeued := 0
	for _, r := range backlog {
		if r.Attempt > 1 {
			requeued++ // claimed by the killed server, sent to no worker: requeued when its registration expired
		}
	}
	s.metric("requeued", requeued)
	slow := 0
	for _, r := range backlog {
		if r.FinishedAt.Sub(fault) > 5*time.Second {
			if slow++; slow <= 5 {
				t.Logf("backlog run %s finished %v after the kill: attempt %d on %s, created %v before, started %v after",
					r.ID, r.FinishedAt.Sub(fault).Round(time.Millisecond), r.Attempt, proc.Deref(r.WorkerID),
					fault.Sub(*r.CreatedAt).Round(time.Millisecond), r.StartedAt.Sub(fault).Round(time.Millisecond))
			}
		}
	}
	s.metric("backlog_slower_than_5s", slow)
	first, _, ok := span(backlog, finishedAt)
	if !ok {
		t.Fatal("no run submitted before the kill finished after it: the kill hit no backlog")
	}
	s.metric("backlog_at_kill", len(backlog))
	s.recovery("first_completion", first.Sub(fault))
	if len(moving) > 0 {
		firstMoved, _, ok := span(moved, finishedAt)
		if !ok {
			t.Fatal("the workers of the killed leader completed nothing after the kill")
		}
		s.recovery("moved_workers_first_completion", firstMoved.Sub(fault))
	}
	_, lastBacklog, _ := span(backlog, finishedAt)
	_, last, _ := span(acked, finishedAt)
	s.recovery("backlog_done", lastBacklog.Sub(fault))
	s.recovery("all_acked_done", last.Sub(fault))
	s.verdict(runs)
}

// clusterServer is one of several servers on a shared store.
type clusterServer struct {
	id, grpc string
	p        *proc.Proc
	api      proc.API
}

// startServers starts n servers (s1, s2, …) on storeURL with 1 s
// heartbeats and returns them with their APIs.
func (s *scenario) startServers(storeURL string, n int) ([]*clusterServer, []proc.API) {
	servers := make([]*clusterServer, n)
	apis := make([]proc.API, n)
	for i := range servers {
		c := &clusterServer{id: fmt.Sprintf("s%d", i+1)}
		var httpAddr string
		c.p, httpAddr, c.grpc = proc.StartServer(s.t, c.id, s.serverArgs(storeURL, "--id", c.id, "--heartbeat", "1s")...)
		c.api = proc.NewAPI(s.t, httpAddr)
		servers[i], apis[i] = c, c.api
	}
	return servers, apis
}
