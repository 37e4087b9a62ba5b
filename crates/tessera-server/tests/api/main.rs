//! API tests: a real server on a loopback port per test, driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests time real processes and sockets; the server under test takes its time from a Clock.
#![allow(clippy::disallowed_methods)]

mod helpers;

mod agent;
mod api_keys;
mod aws;
mod cli_users;
mod config_cli;
mod connections;
mod cookies;
mod csrf;
mod demo;
mod example_upstream;
mod fault_suite;
mod faults;
mod forward_auth;
mod gateway;
mod hardening;
mod introspect;
mod keys;
mod layers;
mod load;
mod login;
mod logout;
mod mail;
mod metrics;
mod mfa;
mod observability;
mod openapi;
mod pages;
mod passkeys;
mod profile;
mod proxies;
mod refresh;
mod register;
mod release;
mod restart;
mod routing;
mod scale_out;
mod scopes;
mod service_accounts;
mod services;
mod sessions;
mod settings;
mod storage;
mod throwaway;
mod token_cache;
mod unauthorized;
