package netguard

import (
	"net"
	"net/http"
	"time"
)

// Transport returns an HTTP transport whose every connection is checked by
// the policy (DialContext). Environment proxies (HTTP_PROXY…) are not
// used: through a proxy the address connected to is the proxy's, and the
// destination could not be checked.
func (p *Policy) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext(d),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
