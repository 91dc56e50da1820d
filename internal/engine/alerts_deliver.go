package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alert webhooks: delivered by the leader's deliverer (delivery.go) like
// callbacks, under the same network policy, back-off and expiry. The
// body is the alert and its run as the API shows them (format json), or
// a text message in the shape Slack's, DingTalk's or Feishu's incoming
// webhooks take. DingTalk and Feishu answer 200 to a refused message and
// say so in the body (errcode, code): that is a failed attempt.

// alertKind is the deliveries of alerts.
type alertKind struct{ e *Engine }

func (alertKind) name() string { return "alert" }

func (k alertKind) nextAt(ctx context.Context) (time.Time, error) { return k.e.st.AlertNextAt(ctx) }

func (alertKind) claim(ctx context.Context, tx store.Tx, p store.CallbackListDueParams) ([]*store.Alert, error) {
	return tx.AlertListDue(ctx, p)
}

func (alertKind) record(ctx context.Context, tx store.Tx, p []store.CallbackRecordParams) ([]bool, error) {
	return tx.AlertRecord(ctx, p)
}

// state: an alert's delivery expires CallbackExpiry after it was raised.
func (alertKind) state(a *store.Alert) (string, store.Callback, time.Time) {
	return a.ID, a.Delivery, a.CreatedAt
}

func (k alertKind) post(ctx context.Context, a *store.Alert) error {
	e := k.e
	body, err := e.alertBody(ctx, a)
	if err != nil {
		return err
	}
	hdr := map[string]string{"X-Pluto-Alert-Id": a.ID, "X-Pluto-Delivery-Attempt": strconv.Itoa(a.Delivery.Attempts)}
	resp, err := e.postHook(ctx, a.Webhook, "pluto-alert/1", body, hdr)
	if err != nil {
		return err
	}
	return chatRefusal(a.Format, resp)
}

// alertBody encodes a in its webhook's format.
func (e *Engine) alertBody(ctx context.Context, a *store.Alert) ([]byte, error) {
	switch a.Format {
	case store.AlertFormatSlack:
		return json.Marshal(map[string]string{"text": alertText(a)})
	case store.AlertFormatDingTalk:
		return json.Marshal(map[string]any{"msgtype": "text", "text": map[string]string{"content": alertText(a)}})
	case store.AlertFormatFeishu:
		return json.Marshal(map[string]any{"msg_type": "text", "content": map[string]string{"text": alertText(a)}})
	}
	ab, err := e.cfg.AlertBody(a)
	if err != nil {
		return nil, fmt.Errorf("encode alert: %w", err)
	}
	rb := []byte("null")
	if a.RunID != "" {
		r, err := e.st.RunGet(ctx, a.RunID)
		switch {
		case err == nil:
			if rb, err = e.cfg.CallbackBody(r); err != nil {
				return nil, fmt.Errorf("encode run: %w", err)
			}
		case !errors.Is(err, store.ErrNotFound): // deleted by retention: sent without it
			return nil, fmt.Errorf("read run %s: %w", a.RunID, err)
		}
	}
	out := append([]byte(`{"alert":`), ab...)
	out = append(append(append(out, `,"run":`...), rb...), '}')
	return out, nil
}

// alertText is an alert as one chat message.
func alertText(a *store.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Pluto] %s alert", strings.ReplaceAll(a.Rule, "_", " "))
	if a.Job != "" {
		fmt.Fprintf(&b, " for job %s", a.Job)
	}
	fmt.Fprintf(&b, "\n%s", a.Reason)
	if a.Group != "" {
		fmt.Fprintf(&b, "\ngroup: %s", a.Group)
	}
	if a.RunID != "" {
		fmt.Fprintf(&b, "\nrun: %s", a.RunID)
	}
	if !a.LogicalTime.IsZero() {
		fmt.Fprintf(&b, "\nlogical time: %s", a.LogicalTime.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "\nalert: %s at %s", a.ID, a.CreatedAt.UTC().Format(time.RFC3339))
	return b.String()
}

// chatRefusal reads the answer of a DingTalk or Feishu webhook, which
// reports a refused message in a 200's body.
func chatRefusal(format string, body []byte) error {
	var ans struct {
		ErrCode *int   `json:"errcode"` // DingTalk
		ErrMsg  string `json:"errmsg"`
		Code    *int   `json:"code"` // Feishu
		Msg     string `json:"msg"`
	}
	switch format {
	case store.AlertFormatDingTalk, store.AlertFormatFeishu:
		if json.Unmarshal(body, &ans) != nil {
			return nil // not the JSON answer expected: the 2xx stands
		}
	default:
		return nil
	}
	if ans.ErrCode != nil && *ans.ErrCode != 0 {
		return fmt.Errorf("refused: errcode %d: %s", *ans.ErrCode, ans.ErrMsg)
	}
	if ans.Code != nil && *ans.Code != 0 {
		return fmt.Errorf("refused: code %d: %s", *ans.Code, ans.Msg)
	}
	return nil
}
