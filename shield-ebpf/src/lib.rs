//! Empty on purpose: this library target lets shield-user name shield-ebpf as a build
//! dependency, so cargo rebuilds the XDP program when it or shield-common changes.
#![no_std]
