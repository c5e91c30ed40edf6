pub mod bpffs;
