package mqtt

import "testing"

// benchPayload is a typical device reading: a dozen fields, one of which a
// filter reads.
var benchPayload = []byte(`{"device":"thermo-0042","site":"plant-3","line":7,"temperature":21.75,"humidity":40.2,` +
	`"pressure":1013.2,"battery":0.87,"rssi":-71,"firmware":"2.4.1","status":"ok","seq":123456,"ts":1764500000123}`)

func BenchmarkDecodeFull(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(JSON, "t", benchPayload, func(Decoded) {}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeProjectedOneField(b *testing.B) {
	d := Decoder{Fields: NewProjection([]string{"temperature"})}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode("t", benchPayload, func(Decoded) {}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeProjectedAllFields(b *testing.B) {
	d := Decoder{Fields: NewProjection([]string{"device", "site", "line", "temperature", "humidity", "pressure",
		"battery", "rssi", "firmware", "status", "seq", "ts"})}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode("t", benchPayload, func(Decoded) {}); err != nil {
			b.Fatal(err)
		}
	}
}
