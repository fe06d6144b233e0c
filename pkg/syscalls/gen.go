package syscalls

//go:generate go run ../../hack/gensyscalls
//go:generate go run ../../hack/genargs
