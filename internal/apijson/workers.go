package apijson

import "encoding/json"

// Command is the body of POST /api/v1/workers/{id}/command and POST
// /api/v1/groups/{group}/command: the name of a command the workers
// registered, its JSON arguments (any JSON value; omitted or null: none),
// and how long to wait for the replies as a Go duration string (default
// "10s", at most "5m").
type Command struct {
	Name    string          `json:"name"`
	Args    json.RawMessage `json:"args,omitempty"`
	Timeout string          `json:"timeout,omitempty"`
}

// CommandReply is one worker's answer to a command. OK: the worker's
// handler succeeded and Result is what it returned; otherwise Error says
// why not: the handler's error, "timeout" (no answer in time), "worker
// disconnected", or an unknown command. Server is the server the worker is
// connected to.
type CommandReply struct {
	Worker string          `json:"worker"`
	Server string          `json:"server,omitempty"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// CommandReplies answers a command: one item per worker asked, ordered by
// worker id. Unreachable lists the servers of a cluster that could not be
// asked for their workers' replies (omitted when none).
type CommandReplies struct {
	Items       []CommandReply      `json:"items"`
	Unreachable []UnreachableServer `json:"unreachable,omitempty"`
}

// UnreachableServer is a server of the cluster that did not answer.
type UnreachableServer struct {
	Server string `json:"server"`
	HTTP   string `json:"http"`
	Error  string `json:"error"`
}
