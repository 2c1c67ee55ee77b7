//! Tests of whole files: the examples of yaml.md, the files in flows/ and
//! topologies/, and one test per kind of mistake.
