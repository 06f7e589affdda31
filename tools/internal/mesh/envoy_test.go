package mesh

import "testing"

func TestSumSeriesAddsEveryLabelSetOfOneMetricOnly(t *testing.T) {
	text := `# TYPE http_server_requests_cancelled_total counter
http_server_requests_cancelled_total{reason="caller_gone",route="/api/v1/orders"} 3
http_server_requests_cancelled_total{reason="deadline",route="/api/v1/orders"} 2
http_server_requests_cancelled_total_other 40
http_server_requests_total{route="/api/v1/orders"} 100
`
	if got := sumSeries(text, "http_server_requests_cancelled_total"); got != 5 {
		t.Fatalf("sum = %v, want 5", got)
	}
	if got := sumSeries("up 1\n", "up"); got != 1 {
		t.Fatalf("unlabelled sum = %v, want 1", got)
	}
	if got := sumSeries(text, "missing_total"); got != 0 {
		t.Fatalf("absent metric = %v, want 0", got)
	}
}
