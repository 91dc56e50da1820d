package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a token may do, as a whole. Every token has exactly one.
type Role string

// The roles, from most to least powerful.
const (
	// RoleAdmin may do everything, managing tokens and reading the audit
	// trail included.
	RoleAdmin Role = "admin"
	// RoleOperator runs the scheduler: runs, jobs, workers and their
	// commands; not tokens, not the audit trail.
	RoleOperator Role = "operator"
	// RoleViewer reads: runs, logs, jobs, workers, the cluster.
	RoleViewer Role = "viewer"
	// RoleClient is an application submitting work: submit, get, list,
	// wait, cancel and retry runs (and read what a viewer reads).
	RoleClient Role = "client"
	// RoleWorker is a worker process: its stream, nothing else.
	RoleWorker Role = "worker"
)

// Roles lists every role, from most to least powerful.
var Roles = []Role{RoleAdmin, RoleOperator, RoleViewer, RoleClient, RoleWorker}

// Permission is one kind of action a request performs. A request needs
// one permission (and, for a run or job of a group, AllowsGroup).
type Permission uint16

// The permissions. Suggested mapping of the API:
//
//	PermRead         GET runs, run logs, wait, jobs, workers, cluster; gRPC Get, List, Wait
//	PermSubmit       POST /runs; gRPC Submit
//	PermRunWrite     cancel, retry a run; gRPC Cancel, Retry
//	PermJobWrite     PUT/DELETE a job; pause, resume, trigger it
//	PermWorkerAdmin  worker actions (drain...), worker and group commands
//	PermWorkerStream the worker stream (gRPC Connect, HTTP worker endpoints)
//	PermTokenAdmin   create, list, revoke tokens
//	PermAudit        read the audit trail
const (
	PermRead Permission = 1 << iota
	PermSubmit
	PermRunWrite
	PermJobWrite
	PermWorkerAdmin
	PermWorkerStream
	PermTokenAdmin
	PermAudit
	numPerms = iota
)

var permNames = [numPerms]string{
	"read", "submit", "run-write", "job-write", "worker-admin", "worker-stream", "token-admin", "audit",
}

// String is the permission's name ("read", "run-write"...), for messages
// and audit entries.
func (p Permission) String() string {
	for i, n := range permNames {
		if p == 1<<i {
			return n
		}
	}
	return fmt.Sprintf("Permission(%#x)", uint16(p))
}

// rolePerms is the permission table.
var rolePerms = map[Role]Permission{
	RoleAdmin:    1<<numPerms - 1,
	RoleOperator: PermRead | PermSubmit | PermRunWrite | PermJobWrite | PermWorkerAdmin,
	RoleViewer:   PermRead,
	RoleClient:   PermRead | PermSubmit | PermRunWrite,
	RoleWorker:   PermWorkerStream,
}

// Allows reports whether the role grants p. An unknown role grants
// nothing; p must be a single permission.
func (r Role) Allows(p Permission) bool {
	return p != 0 && p&(p-1) == 0 && rolePerms[r]&p == p
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	_, ok := rolePerms[r]
	return ok
}

// ParseRole parses a role name (case-insensitive, surrounding spaces
// ignored). The error names the field: `role "x": unknown role (want
// admin, operator, viewer, client or worker)`.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", unknownRole(s)
	}
	return r, nil
}

func unknownRole(s string) error {
	return fmt.Errorf("role %q: unknown role (want admin, operator, viewer, client or worker)", s)
}

// Name and group bounds.
const (
	MaxNameLen   = 64
	MaxGroups    = 64
	MaxGroupLen  = 128
	nameSpecials = "._-"
)

// ValidateName checks a token name: 1 to MaxNameLen bytes of ASCII
// letters, digits, '.', '_' and '-', starting with a letter or digit.
// (Names appear in audit entries, listings and TopicTokens payloads.)
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("name: empty token name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("name: token name of %d bytes, more than %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune(nameSpecials, rune(c))) {
			return fmt.Errorf("name: token name %q: want letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// ValidateGroups checks the groups a token is limited to (none: all
// groups): at most MaxGroups, each 1 to MaxGroupLen bytes, no repeats. It
// returns them sorted, nil when empty.
func ValidateGroups(groups []string) ([]string, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	if len(groups) > MaxGroups {
		return nil, fmt.Errorf("groups: %d groups, more than %d", len(groups), MaxGroups)
	}
	out := slices.Clone(groups)
	slices.Sort(out)
	for i, g := range out {
		switch {
		case g == "":
			return nil, fmt.Errorf("groups: empty group name")
		case len(g) > MaxGroupLen:
			return nil, fmt.Errorf("groups: group name of %d bytes, more than %d", len(g), MaxGroupLen)
		case i > 0 && out[i-1] == g:
			return nil, fmt.Errorf("groups: group %q given twice", g)
		}
	}
	return out, nil
}
