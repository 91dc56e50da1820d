package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// post is one POST the receiver got.
type post struct {
	runID, attempt string
	status         int // what the receiver answered
	body           map[string]any
}

// receiver is a callback endpoint in the test process that answers 500 to
// its first `fail` POSTs and 200 after.
type receiver struct {
	mu    sync.Mutex
	fail  int
	posts []post
	got   chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	rc.mu.Lock()
	p := post{runID: r.Header.Get("X-Pluto-Run-Id"), attempt: r.Header.Get("X-Pluto-Delivery-Attempt"), status: http.StatusOK, body: body}
	if len(rc.posts) < rc.fail {
		p.status = http.StatusInternalServerError
	}
	rc.posts = append(rc.posts, p)
	rc.mu.Unlock()
	w.WriteHeader(p.status)
	select {
	case rc.got <- struct{}{}:
	default:
	}
}

func (rc *receiver) snapshot() []post {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]post(nil), rc.posts...)
}

// awaitPosts waits until the receiver got n POSTs.
func (rc *receiver) awaitPosts(t *testing.T, n int, within time.Duration) []post {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if ps := rc.snapshot(); len(ps) >= n {
			return ps
		}
		select {
		case <-rc.got:
		case <-deadline.C:
			t.Fatalf("the receiver got %d POSTs within %v, want %d: %+v", len(rc.snapshot()), within, n, rc.snapshot())
		}
	}
}

type callbackState struct {
	State       string  `json:"state"`
	Attempts    int     `json:"attempts"`
	NextAt      *string `json:"next_at"`
	LastError   *string `json:"last_error"`
	DeliveredAt *string `json:"delivered_at"`
}

type runWithCallback struct {
	proc.Run
	CallbackURL *string        `json:"callback_url"`
	Callback    *callbackState `json:"callback"`
}

// loopbackHooks is the --callback-allow that lets the servers reach the
// receivers, httptest servers on loopback (refused by default).
const loopbackHooks = "127.0.0.1/32"

// TestCallbackAcrossServerKill: a run with a callback URL finishes; its
// receiver refuses the first POST and the server is SIGKILLed before it
// retries. The server started again on the same store delivers the run's
// final state (the receiver refuses once more, then takes it), and the run
// shows delivered.
func TestCallbackAcrossServerKill(t *testing.T) {
	rc := &receiver{fail: 2, got: make(chan struct{}, 1)}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	db := "sqlite:" + filepath.Join(t.TempDir(), "pluto.db")
	// One server ID for both processes: the second renews the first's
	// leader lease instead of waiting for it to run out.
	srv, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", db, "--heartbeat", "1s", "--id", "s1", "--callback-allow", loopbackHooks)
	w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "2", "--shell")
	w.Await(30*time.Second, "connected")
	a := proc.NewAPI(t, httpAddr)

	var created runWithCallback
	if code := a.Do("POST", "/api/v1/runs", map[string]any{
		"type": "shell", "group": "default", "payload": map[string]string{"cmd": "echo feedback"},
		"callback_url": hook.URL + "/hook?from=e2e",
	}, &created); code != http.StatusCreated {
		t.Fatalf("submit: HTTP %d", code)
	}
	if created.Callback == nil || created.Callback.State != "none" || created.CallbackURL == nil {
		t.Fatalf("submitted run: callback_url %v callback %+v", created.CallbackURL, created.Callback)
	}
	if got := a.Wait(created.ID, time.Minute); got.Status != "succeeded" {
		t.Fatalf("run %s", got.Status)
	}
	first := rc.awaitPosts(t, 1, 30*time.Second)
	// Once the refusal is recorded (a retry is then 0.5–1 s away), kill the
	// server. (Killed before the record, the claim's lease would have to
	// lapse first: about a minute.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var r runWithCallback
		a.Do("GET", "/api/v1/runs/"+created.ID, nil, &r)
		if r.Callback != nil && r.Callback.LastError != nil {
			if r.Callback.State != "pending" || r.Callback.Attempts != 1 || r.Callback.NextAt == nil {
				t.Fatalf("after the first refusal: %+v", r.Callback)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first refusal was not recorded: %+v", r.Callback)
		}
		time.Sleep(10 * time.Millisecond) // polling another process's state
	}
	srv.Signal(syscall.SIGKILL)
	<-srv.Exited()
	if first[0].runID != created.ID || first[0].attempt != "1" {
		t.Fatalf("first POST %+v", first[0])
	}
	t.Logf("server SIGKILLed after %d POST(s), the first answered %d", len(rc.snapshot()), first[0].status)

	restarted := proc.Start(t, "server2", "server", "--store", db, "--heartbeat", "1s", "--id", "s1", "--http", httpAddr, "--grpc", grpcAddr,
		"--callback-allow", loopbackHooks)
	restarted.Await(30*time.Second, "pluto server started")
	posts := rc.awaitPosts(t, 3, time.Minute)
	var delivered *post
	for i := range posts {
		p := &posts[i]
		if p.runID != created.ID || p.body["id"] != created.ID || p.body["status"] != "succeeded" {
			t.Errorf("POST %d: run %q attempt %s body id %v status %v", i+1, p.runID, p.attempt, p.body["id"], p.body["status"])
		}
		if p.status == http.StatusOK && delivered == nil {
			delivered = p
		}
	}
	if delivered == nil {
		t.Fatalf("no POST was answered 200: %+v", posts)
	}
	if res, _ := json.Marshal(delivered.body["result"]); !strings.Contains(string(res), "feedback") {
		t.Errorf("delivered result %s, want the shell's output", res)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		var r runWithCallback
		a.Do("GET", "/api/v1/runs/"+created.ID, nil, &r)
		if r.Callback != nil && r.Callback.State == "delivered" {
			if r.Callback.Attempts < 3 || r.Callback.DeliveredAt == nil || r.Callback.LastError != nil {
				t.Errorf("delivered callback %+v", r.Callback)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callback %+v, want delivered", r.Callback)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
	// Nothing is POSTed after the delivery was recorded.
	n := len(rc.snapshot())
	time.Sleep(2 * time.Second)
	if m := len(rc.snapshot()); m != n {
		t.Errorf("%d more POSTs after the delivery was recorded", m-n)
	}
}

// TestCallbackOnPostgresAcrossServers: two servers share PostgreSQL. A run
// finished on the server that does not lead is delivered by the leader
// (told by a notification); with the leader SIGKILLed, the other server
// takes the lease and delivers what is owed, including a delivery owed
// while nobody led.
func TestCallbackOnPostgresAcrossServers(t *testing.T) {
	store := proc.PGURL(t)
	rc := &receiver{got: make(chan struct{}, 1)}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	lease := []string{"--store", store, "--heartbeat", "1s", "--lease-ttl", "3s", "--renew-interval", "500ms", "--callback-allow", loopbackHooks}
	leader, _, _ := proc.StartServer(t, "s1", append(lease, "--id", "s1")...)
	time.Sleep(time.Second) // s1 takes the first term
	_, httpAddr, grpcAddr := proc.StartServer(t, "s2", append(lease, "--id", "s2")...)
	w := proc.Start(t, "w1", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "2", "--shell")
	w.Await(30*time.Second, "connected")
	a := proc.NewAPI(t, httpAddr)
	var cluster struct{ Leader string }
	if a.Do("GET", "/api/v1/cluster", nil, &cluster); cluster.Leader != "s1" {
		t.Fatalf("leader %q, want s1", cluster.Leader)
	}

	submit := func(cmd string) string {
		var r runWithCallback
		if code := a.Do("POST", "/api/v1/runs", map[string]any{
			"type": "shell", "group": "default", "payload": map[string]string{"cmd": cmd}, "callback_url": hook.URL,
		}, &r); code != http.StatusCreated {
			t.Fatalf("submit: HTTP %d", code)
		}
		return r.ID
	}
	first := submit("echo one")
	if got := a.Wait(first, time.Minute); got.Status != "succeeded" {
		t.Fatalf("run %s", got.Status)
	}
	if ps := rc.awaitPosts(t, 1, 10*time.Second); ps[0].runID != first {
		t.Fatalf("POST %+v", ps[0])
	}
	awaitDelivered := func(id string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var r runWithCallback
			a.Do("GET", "/api/v1/runs/"+id, nil, &r)
			if r.Callback != nil && r.Callback.State == "delivered" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s: callback %+v, want delivered", id, r.Callback)
			}
			time.Sleep(20 * time.Millisecond) // polling another process's state
		}
	}
	// Recorded before the leader dies (killed between POST and record, it
	// would be POSTed again once its claim lapsed: at least once).
	awaitDelivered(first)

	leader.Signal(syscall.SIGKILL)
	<-leader.Exited()
	second := submit("echo two") // finishes while nobody may lead yet
	if got := a.Wait(second, time.Minute); got.Status != "succeeded" {
		t.Fatalf("run %s", got.Status)
	}
	ps := rc.awaitPosts(t, 2, 30*time.Second)
	if ps[1].runID != second || ps[1].body["status"] != "succeeded" {
		t.Fatalf("second POST %+v", ps[1])
	}
	awaitDelivered(second)
	if n := len(rc.snapshot()); n != 2 {
		t.Errorf("%d POSTs, want 2", n)
	}
}
