pub use mspipe_data as data;
