//! The source-to-image contract (shared/spec/s2i.md), as pure functions:
//! what a builder image's labels say ([`metadata`]), where each script comes
//! from ([`scripts`]), the `.s2i/environment` file ([`environment`]), which
//! users may run `assemble` ([`users`]), and the Dockerfile that performs an
//! S2I build on a container engine ([`dockerfile`]), what assemble may add
//! to the output image and the bound on its labels ([`output`]), and which
//! builder a source wants ([`detect`]). No I/O: the build node
//! reads the image and the source, this crate decides. The exceptions are
//! [`layout`], which writes the `upload/` tree a build context holds (local
//! files only: the node and `psc start-build --as-dockerfile` share it), and
//! [`ignore`], docker's ignore-file rules (`.s2iignore`, and the node's
//! `.dockerignore` for Docker builds), and [`injection`], which places
//! build-time Secrets and ConfigMaps and writes their `upload/` files.

pub mod detect;
pub mod dockerfile;
pub mod environment;
pub mod ignore;
pub mod injection;
pub mod layout;
pub mod metadata;
pub mod output;
pub mod scripts;
pub mod users;
