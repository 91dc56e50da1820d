package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrForbidden reports an authenticated caller whose token does not allow
// the request (HTTP 403, gRPC PermissionDenied).
var ErrForbidden = errors.New("auth: forbidden")

// Principal is the verified identity behind a request. It holds no
// secret and may be logged.
type Principal struct {
	Name string // the token's name: the actor of audit entries
	Role Role
	// Groups limits the principal to these run groups (sorted); empty
	// means all groups.
	Groups    []string
	ExpiresAt time.Time // zero: never
}

// Allows reports whether the principal's role grants p. A token limited
// to groups is never granted PermTokenAdmin: it could otherwise create a
// token without the limit. A nil principal is allowed nothing.
func (p *Principal) Allows(perm Permission) bool {
	if p == nil || (perm == PermTokenAdmin && len(p.Groups) > 0) {
		return false
	}
	return p.Role.Allows(perm)
}

// AllowsGroup reports whether the principal may act on runs and jobs of
// group g: always for a token without groups, otherwise when g is one of
// them. It says nothing about the role: check Allows too (Authorize does
// both).
func (p *Principal) AllowsGroup(g string) bool {
	if p == nil {
		return false
	}
	if len(p.Groups) == 0 {
		return true
	}
	_, found := slices.BinarySearch(p.Groups, g)
	return found
}

// Authorize returns nil when the principal may perform perm, and an error
// wrapping ErrForbidden otherwise. Use it for requests that concern no
// single group (a listing: filter its items with AllowsGroup; token
// administration); use AuthorizeGroup for the others.
func (p *Principal) Authorize(perm Permission) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: no principal", ErrForbidden)
	case !p.Allows(perm):
		return fmt.Errorf("%w: token %q (role %s) lacks permission %s", ErrForbidden, p.Name, p.Role, perm)
	}
	return nil
}

// AuthorizeGroup is Authorize for a request on a run or job of group g
// (the run's group as stored, "" included: a token limited to groups
// allows "" only if it lists it).
func (p *Principal) AuthorizeGroup(perm Permission, g string) error {
	if err := p.Authorize(perm); err != nil {
		return err
	}
	if !p.AllowsGroup(g) {
		return fmt.Errorf("%w: token %q is not allowed group %q", ErrForbidden, p.Name, g)
	}
	return nil
}
