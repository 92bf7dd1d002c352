package dashboard

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", `<script src="app.js">`},
		{"/app.js", "text/javascript", "Bearer "},
		{"/style.css", "text/css", ":root"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/pipelines/plant/hot", "text/html", "<html"}, // deep link -> the app
	}
	h := Handler()
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.wantType) || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%s: %d %q %.80s", tt.path, rec.Code, rec.Header().Get("Content-Type"), body)
			}
			if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
				t.Fatalf("no CSP: %v", rec.Header())
			}
		})
	}
}

// TestNoRemoteAssets keeps the dashboard offline: nothing is loaded from
// another origin.
func TestNoRemoteAssets(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s references %q: the dashboard must work offline", name, bad)
			}
		}
	}
}
