package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestRoleAllows(t *testing.T) {
	all := []Permission{PermRead, PermSubmit, PermRunWrite, PermJobWrite, PermWorkerAdmin, PermWorkerStream, PermTokenAdmin, PermAudit}
	want := map[Role]string{ // the permissions granted, by initial
		RoleAdmin:    "read submit run-write job-write worker-admin worker-stream token-admin audit",
		RoleOperator: "read submit run-write job-write worker-admin",
		RoleViewer:   "read",
		RoleClient:   "read submit run-write",
		RoleWorker:   "worker-stream",
		Role("root"): "",
	}
	for r, w := range want {
		var got []string
		for _, p := range all {
			if r.Allows(p) {
				got = append(got, p.String())
			}
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s allows %q, want %q", r, got, w)
		}
		if r.Allows(PermRead|PermSubmit) || r.Allows(0) {
			t.Errorf("%s allows a combination or nothing", r)
		}
	}
	if s := Permission(1 << 12).String(); !strings.Contains(s, "0x1000") {
		t.Errorf("unknown permission prints %q", s)
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(" " + strings.ToUpper(string(r)) + " "); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	_, err := ParseRole("root")
	if err == nil || !strings.HasPrefix(err.Error(), `role "root"`) || !strings.Contains(err.Error(), "operator") {
		t.Errorf("ParseRole(root) error %v, want one naming the field and the choices", err)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "ci-deploy", "team.x_1", strings.Repeat("n", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "a b", "é", "a/b", strings.Repeat("n", MaxNameLen+1)} {
		err := ValidateName(bad)
		if err == nil || !strings.HasPrefix(err.Error(), "name: ") {
			t.Errorf("ValidateName(%q) = %v, want an error naming the field", bad, err)
		}
	}
}

func TestValidateGroups(t *testing.T) {
	got, err := ValidateGroups([]string{"b", "a"})
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Errorf("ValidateGroups = %v, %v; want sorted", got, err)
	}
	if got, err := ValidateGroups([]string{}); got != nil || err != nil {
		t.Errorf("ValidateGroups(empty) = %v, %v; want nil", got, err)
	}
	many := make([]string, MaxGroups+1)
	for i := range many {
		many[i] = strings.Repeat("g", i+1)
	}
	for _, bad := range [][]string{{""}, {"a", "a"}, {strings.Repeat("g", MaxGroupLen+1)}, many} {
		if _, err := ValidateGroups(bad); err == nil || !strings.HasPrefix(err.Error(), "groups: ") {
			t.Errorf("ValidateGroups(%d groups) = %v, want an error naming the field", len(bad), err)
		}
	}
}

func TestPrincipal(t *testing.T) {
	all := &Principal{Name: "ops", Role: RoleOperator}
	limited := &Principal{Name: "team", Role: RoleAdmin, Groups: []string{"build", "deploy"}}
	var none *Principal
	if !all.AllowsGroup("x") || !all.AllowsGroup("") {
		t.Error("a token without groups must allow every group")
	}
	if !limited.AllowsGroup("deploy") || limited.AllowsGroup("prod") || limited.AllowsGroup("") {
		t.Error("a limited token allows exactly its groups")
	}
	if none.AllowsGroup("x") || none.Allows(PermRead) {
		t.Error("a nil principal allows nothing")
	}
	if limited.Allows(PermTokenAdmin) || !limited.Allows(PermAudit) {
		t.Error("a limited admin must not administer tokens")
	}
	for _, c := range []struct {
		p     *Principal
		perm  Permission
		group string
		ok    bool
	}{
		{all, PermJobWrite, "x", true},
		{all, PermTokenAdmin, "", false},
		{limited, PermSubmit, "build", true},
		{limited, PermSubmit, "prod", false},
		{limited, PermSubmit, "", false},
		{none, PermRead, "x", false},
	} {
		err := c.p.AuthorizeGroup(c.perm, c.group)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("AuthorizeGroup(%v, %s, %q) = %v, want ok=%v", c.p, c.perm, c.group, err, c.ok)
		}
	}
	if err := all.Authorize(PermRead); err != nil {
		t.Errorf("Authorize(read): %v", err)
	}
	if err := all.Authorize(PermAudit); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "audit") {
		t.Errorf("Authorize(audit) = %v", err)
	}
}
