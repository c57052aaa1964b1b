// Command davplain is the benchmark peer of `spraydryfs serve webdav`:
// golang.org/x/net/webdav serving a plain directory (webdav.Dir) read-write
// with an in-memory lock system, as its documentation shows. It prints its
// URL on stdout and serves until killed.
//
//	go run ./bench/davplain -listen 127.0.0.1:0 DIR
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"golang.org/x/net/webdav"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: davplain [-listen ADDR] DIR")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s/\n", ln.Addr())
	h := &webdav.Handler{FileSystem: webdav.Dir(flag.Arg(0)), LockSystem: webdav.NewMemLS()}
	log.Fatal(http.Serve(ln, h))
}
