package syscalls

//go:generate go run ../../hack/gensyscalls
