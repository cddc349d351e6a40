module github.com/dhtkit/dhtkit

go 1.26
