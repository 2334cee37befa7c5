use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::load_from(std::iter::once("keel").chain(args.iter().copied()), &|k| env.get(k).cloned())
}

/// Writes a unique temp TOML file, removed on drop.
struct TempToml(PathBuf);
impl TempToml {
    fn new(contents: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("keel-config-test-{}-{}.toml", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempToml(path)
    }
    fn arg(&self) -> String {
        format!("--config={}", self.0.display())
    }
}
impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn defaults() {
    let c = load(&[], &[]).unwrap();
    assert_eq!((c.node_id, c.data_dir.to_str()), (1, Some("./keel-data")));
    assert_eq!(c.ingress_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin_addr.to_string(), "0.0.0.0:9070");
    // Alone, the node port listens on loopback only.
    assert_eq!(c.node_addr.to_string(), "127.0.0.1:5122");
    assert_eq!(c.advertised_addr, "127.0.0.1:5122");
    assert_eq!(c.peers, BTreeMap::from([(1, "127.0.0.1:5122".to_string())]));
    assert_eq!((c.partitions, c.replication_factor, c.fsync), (8, 1, true));
    assert_eq!((c.snapshot_logs, c.keep_logs), (5000, 1000));
    assert_eq!((c.heartbeat_ms, c.election_timeout_ms), (100, 1000));
    assert_eq!((c.max_body_bytes, c.log.as_str(), c.config_file), (10 * 1024 * 1024, DEFAULT_LOG, None));
    assert_eq!((c.max_concurrent_invocations, c.max_concurrent_invocations_per_deployment), (1000, 500));
    assert_eq!(load(&["--max-concurrent-invocations", "2"], &[]).unwrap().max_concurrent_invocations, 2);
    assert_eq!((c.max_inflight_requests, c.attach_timeout), (10_000, Some(Duration::from_secs(300))));
}

#[test]
fn a_deployments_share_of_the_invocation_slots_follows_the_node_limit_unless_set() {
    let shares = |args: &[&str], env: &[(&str, &str)]| {
        let c = load(args, env).unwrap();
        (c.max_concurrent_invocations, c.max_concurrent_invocations_per_deployment)
    };
    // Half the node's slots, rounded up, wherever the node limit came from.
    assert_eq!(shares(&["--max-concurrent-invocations", "4"], &[]), (4, 2));
    assert_eq!(shares(&[], &[("KEEL_MAX_CONCURRENT_INVOCATIONS", "7")]), (7, 4));
    assert_eq!(shares(&["--max-concurrent-invocations", "1"], &[]), (1, 1));
    // Set, it is taken as it is, above the node limit too (one deployment
    // may then take every slot).
    assert_eq!(shares(&["--max-concurrent-invocations-per-deployment", "3"], &[]), (1000, 3));
    let env = [("KEEL_MAX_CONCURRENT_INVOCATIONS_PER_DEPLOYMENT", "9")];
    assert_eq!(shares(&["--max-concurrent-invocations", "4"], &env), (4, 9));
}

#[test]
fn attach_timeout_takes_friendly_and_iso_durations() {
    let t = |v: &str| load(&["--attach-timeout", v], &[]).map(|c| c.attach_timeout);
    assert_eq!(t("30s").unwrap(), Some(Duration::from_secs(30)));
    assert_eq!(t("PT2M").unwrap(), Some(Duration::from_secs(120)));
    assert_eq!(t("0s").unwrap(), None);
    let e = t("soon").unwrap_err();
    assert_eq!(e.field, "--attach-timeout");
    let e = load(&["--max-inflight-requests", "0"], &[]).unwrap_err();
    assert_eq!(e.field, "--max-inflight-requests");
}

#[test]
fn every_key_has_a_flag() {
    let cli = Cli::try_parse_from(
        std::iter::once("keel".to_string()).chain(KEYS.iter().map(|k| format!("--{}=x", k.replace('_', "-")))),
    )
    .unwrap();
    assert_eq!(
        cli.flags().keys().copied().collect::<Vec<_>>(),
        KEYS.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>()
    );
}

#[test]
fn precedence_flag_over_file_over_env() {
    let f = TempToml::new("partitions = 16\nheartbeat_ms = 50\nlog = \"debug\"\ndata_dir = \"/from/file\"\n");
    let env = [
        ("KEEL_PARTITIONS", "32"),
        ("KEEL_HEARTBEAT_MS", "70"),
        ("KEEL_LOG", "warn"),
        ("KEEL_KEEP_LOGS", "7"),
        ("KEEL_SNAPSHOT_LOGS", ""),
    ];
    let c = load(&[&f.arg(), "--partitions", "64", "--data-dir", "/from/flag"], &env).unwrap();
    assert_eq!(c.partitions, 64); // flag > file > env
    assert_eq!(c.data_dir, PathBuf::from("/from/flag")); // flag > file
    assert_eq!(c.heartbeat_ms, 50); // file > env
    assert_eq!(c.log, "debug"); // file > env
    assert_eq!(c.keep_logs, 7); // env > default
    assert_eq!(c.snapshot_logs, 5000); // empty env = unset
    assert_eq!(c.config_file, Some(f.0.clone()));
}

#[test]
fn peers_string_form_from_flag_and_env() {
    let p = "1=127.0.0.1:5122, 2=127.0.0.1:5123,3=node-c:5124,4=[::1]:5125";
    for c in [
        load(&["--node-id", "2", "--peers", p, "--insecure-cluster"], &[]).unwrap(),
        load(&[], &[("KEEL_NODE_ID", "2"), ("KEEL_PEERS", p), ("KEEL_CLUSTER_SECRET", SECRET)]).unwrap(),
    ] {
        assert_eq!(c.node_addr.to_string(), "0.0.0.0:5122");
        assert_eq!(c.peers.len(), 4);
        assert_eq!(c.peers[&3], "node-c:5124");
        assert_eq!(c.peers[&4], "[::1]:5125");
        assert_eq!(c.advertised_addr, "127.0.0.1:5123");
        assert_eq!(c.replication_factor, 3); // min(3, 4)
    }
}

#[test]
fn peers_toml_table_and_string_forms() {
    let table = TempToml::new("node_id = 1\n[peers]\n1 = \"10.0.0.1:5122\"\n2 = \"10.0.0.2:5122\"\n");
    let c = load(&[&table.arg()], &[("KEEL_CLUSTER_SECRET", SECRET)]).unwrap();
    assert_eq!(c.peers, BTreeMap::from([(1, "10.0.0.1:5122".into()), (2, "10.0.0.2:5122".into())]));
    assert_eq!((c.advertised_addr.as_str(), c.replication_factor), ("10.0.0.1:5122", 2));
    let string = TempToml::new("node_id = 2\npeers = \"1=a:1,2=b:2\"\nadvertised_addr = \"b-public:2\"\n");
    let c = load(&[&string.arg(), "--insecure-cluster=true"], &[]).unwrap();
    assert_eq!(c.peers, BTreeMap::from([(1, "a:1".into()), (2, "b:2".into())]));
    assert_eq!(c.advertised_addr, "b-public:2");
}

#[test]
fn single_node_default_peers_is_self() {
    let c = load(&["--node-id", "7", "--node-addr", "0.0.0.0:6000"], &[]).unwrap();
    assert_eq!(c.advertised_addr, "127.0.0.1:6000");
    assert_eq!(c.peers, BTreeMap::from([(7, "127.0.0.1:6000".to_string())]));
    let c = load(&["--node-id", "7", "--advertised-addr", "host:1", "--peers", ""], &[]).unwrap();
    assert_eq!(c.peers, BTreeMap::from([(7, "host:1".to_string())]));
    assert_eq!(c.replication_factor, 1);
}

const SECRET: &str = "a-cluster-secret-of-some-length";

#[test]
fn secrets_come_from_files_or_values_and_are_not_printed() {
    let file = TempToml::new("  file-secret-0123456789\n");
    let c = load(
        &["--peers", "1=a:1,2=b:2", "--cluster-secret-file", file.0.to_str().unwrap()],
        &[("KEEL_CLUSTER_SECRET", SECRET), ("KEEL_ADMIN_TOKEN", "adm"), ("KEEL_INGRESS_TOKEN", "ing")],
    )
    .unwrap();
    // The file wins over the value in the environment; whitespace is trimmed.
    assert_eq!(c.security.cluster_secret, Some(Secret("file-secret-0123456789".into())));
    assert_eq!(c.security.admin_token, Some(Secret("adm".into())));
    assert_eq!(c.security.ingress_token, Some(Secret("ing".into())));
    assert!(!format!("{c:?}").contains("file-secret") && !format!("{c:?}").contains("adm\""));
    let c = load(&["--admin-token-file", file.0.to_str().unwrap()], &[]).unwrap();
    assert_eq!(c.security.admin_token, Some(Secret("file-secret-0123456789".into())));
    assert_eq!((c.security.cluster_secret.as_ref(), c.security.ingress_token.as_ref()), (None, None));
}

#[test]
fn mutual_tls_reads_pem_files() {
    let pem = TempToml::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let path = pem.0.to_str().unwrap();
    let c = load(&["--peers", "1=a:1,2=b:2", "--tls-cert", path, "--tls-key", path, "--tls-ca", path], &[]).unwrap();
    let tls = c.security.tls.expect("tls configured");
    assert!(tls.ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
    let not_pem = TempToml::new("hello");
    let e = load(&["--tls-cert", path, "--tls-key", not_pem.0.to_str().unwrap(), "--tls-ca", path], &[]).unwrap_err();
    assert_eq!(e.field, "--tls-key");
}

#[test]
fn http_limits() {
    let c = load(&[], &[]).unwrap();
    assert_eq!((c.http_header_timeout, c.http_body_timeout), (Duration::from_secs(30), Duration::from_secs(60)));
    assert_eq!(c.max_connections, 10_000);
    let c =
        load(&["--http-header-timeout", "PT2S", "--http-body-timeout", "5s", "--max-connections", "7"], &[]).unwrap();
    assert_eq!((c.http_header_timeout, c.http_body_timeout), (Duration::from_secs(2), Duration::from_secs(5)));
    assert_eq!(c.max_connections, 7);
}

#[test]
fn shutdown_timeout() {
    assert_eq!(load(&[], &[]).unwrap().shutdown_timeout, Duration::from_secs(30));
    assert_eq!(load(&["--shutdown-timeout", "5s"], &[]).unwrap().shutdown_timeout, Duration::from_secs(5));
    let c = load(&[], &[("KEEL_SHUTDOWN_TIMEOUT", "PT1M")]).unwrap();
    assert_eq!(c.shutdown_timeout, Duration::from_secs(60));
    for bad in ["0s", "2d", "soon"] {
        let e = load(&["--shutdown-timeout", bad], &[]).unwrap_err();
        assert!(e.to_string().contains("--shutdown-timeout"), "{bad}: {e}");
    }
}

#[test]
fn completed_retention() {
    assert_eq!(load(&[], &[]).unwrap().completed_retention, Duration::from_secs(300));
    let c = load(&["--completed-retention", "90s"], &[]).unwrap();
    assert_eq!(c.completed_retention, Duration::from_secs(90));
    let c = load(&[], &[("KEEL_COMPLETED_RETENTION", "PT10M")]).unwrap();
    assert_eq!(c.completed_retention, Duration::from_secs(600));
    for bad in ["0s", "500ms", "2d", "a while"] {
        let e = load(&["--completed-retention", bad], &[]).unwrap_err();
        assert!(e.to_string().contains("--completed-retention"), "{bad}: {e}");
    }
}

#[test]
fn rocksdb_memory_budget() {
    assert_eq!(load(&[], &[]).unwrap().rocksdb_memory_budget.0, 128 << 20);
    let c = load(&["--rocksdb-memory-budget", "1GiB"], &[]).unwrap();
    assert_eq!(c.rocksdb_memory_budget.0, 1 << 30);
    let c = load(&[], &[("KEEL_ROCKSDB_MEMORY_BUDGET", "64 mib")]).unwrap();
    assert_eq!(c.rocksdb_memory_budget.0, 64 << 20);
    assert_eq!(load(&["--rocksdb-memory-budget", "33554432"], &[]).unwrap().rocksdb_memory_budget.0, 32 << 20);
    for bad in ["1MiB", "lots", "16 furlongs"] {
        let e = load(&["--rocksdb-memory-budget", bad], &[]).unwrap_err();
        assert!(e.to_string().contains("--rocksdb-memory-budget"), "{bad}: {e}");
    }
}

#[test]
fn fsync_forms() {
    assert!(!load(&["--fsync=false"], &[]).unwrap().fsync);
    assert!(!load(&["--fsync", "false"], &[]).unwrap().fsync);
    assert!(load(&["--fsync"], &[("KEEL_FSYNC", "0")]).unwrap().fsync);
    assert!(!load(&[], &[("KEEL_FSYNC", "0")]).unwrap().fsync);
    assert!(load(&[], &[("KEEL_FSYNC", "1")]).unwrap().fsync);
    let f = TempToml::new("fsync = false\n");
    assert!(!load(&[&f.arg()], &[("KEEL_FSYNC", "true")]).unwrap().fsync);
}

#[test]
fn errors_name_their_field() {
    let missing = format!("--config={}", std::env::temp_dir().join("keel-no-such-config.toml").display());
    // (TOML file contents or "" for none, flags, env, expected field)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("", &[], &[("KEEL_PARTITIONS", "abc")], "KEEL_PARTITIONS"),
        ("", &["--partitions", "0"], &[], "--partitions"),
        ("partitions = 2000\n", &[], &[], "partitions"),
        ("partitions = 4\nbogus = 1\n", &[], &[], "bogus"),
        ("partitions = = 4\n", &[], &[], "--config"),
        ("", &[&missing], &[], "--config"),
        ("node_id = \"x\"\n", &[], &[], "node_id"),
        ("node_id = -1\n", &[], &[], "node_id"),
        ("", &["--node-id", "0"], &[], "--node-id"),
        ("peers = 5\n", &[], &[], "peers"),
        ("[peers]\n1 = 5\n", &[], &[], "peers"),
        ("", &["--node-id", "3", "--peers", "1=a:1,2=b:2"], &[], "--peers"),
        ("", &[], &[("KEEL_PEERS", "1=a:1,1=b:2")], "KEEL_PEERS"),
        ("", &["--peers", "1=nohost"], &[], "--peers"),
        ("", &["--peers", "x=a:1"], &[], "--peers"),
        (
            "",
            &["--peers", "1=a:1,2=b:2", "--insecure-cluster", "--replication-factor", "3"],
            &[],
            "--replication-factor",
        ),
        ("", &["--peers", "1=a:1,2=b:2"], &[], "--cluster-secret-file"),
        ("", &["--peers", "1=a:1,2=b:2"], &[("KEEL_CLUSTER_SECRET", "short")], "KEEL_CLUSTER_SECRET"),
        ("", &["--cluster-secret-file", "/no/such/secret"], &[], "--cluster-secret-file"),
        ("", &["--ingress-token-file", "/dev/null"], &[], "--ingress-token-file"),
        ("", &["--tls-cert", "/c.pem", "--tls-ca", "/ca.pem"], &[], "--tls-key"),
        ("", &["--insecure-cluster", "perhaps"], &[], "--insecure-cluster"),
        ("", &["--http-header-timeout", "0s"], &[], "--http-header-timeout"),
        ("", &[], &[("KEEL_HTTP_BODY_TIMEOUT", "PT-1S")], "KEEL_HTTP_BODY_TIMEOUT"),
        ("", &["--http-body-timeout", "400days"], &[], "--http-body-timeout"),
        ("", &["--max-connections", "0"], &[], "--max-connections"),
        ("", &[], &[("KEEL_REPLICATION_FACTOR", "0")], "KEEL_REPLICATION_FACTOR"),
        ("", &["--election-timeout-ms", "100"], &[], "--election-timeout-ms"),
        ("heartbeat_ms = 900\nelection_timeout_ms = 900\n", &[], &[], "election_timeout_ms"),
        ("", &["--heartbeat-ms", "0"], &[], "--heartbeat-ms"),
        ("", &["--snapshot-logs", "0"], &[], "--snapshot-logs"),
        ("", &[], &[("KEEL_FSYNC", "maybe")], "KEEL_FSYNC"),
        ("", &["--ingress-addr", "localhost"], &[], "--ingress-addr"),
        ("", &[], &[("KEEL_ADMIN_ADDR", "1.2.3.4")], "KEEL_ADMIN_ADDR"),
        ("", &["--advertised-addr", "host:0"], &[], "--advertised-addr"),
        ("", &["--max-body-bytes=-1"], &[], "--max-body-bytes"),
        ("", &["--max-body-bytes=40000000"], &[], "--max-body-bytes"),
        ("", &["--max-concurrent-invocations", "0"], &[], "--max-concurrent-invocations"),
        ("max_concurrent_invocations_per_deployment = 0\n", &[], &[], "max_concurrent_invocations_per_deployment"),
        ("", &["--log", "keel=loud"], &[], "--log"),
        ("", &["--data-dir="], &[], "--data-dir"),
        ("", &["--no-such-flag"], &[], "args"),
        ("", &["--help"], &[], "args"),
    ];
    for (toml, args, env, field) in cases {
        let file = (!toml.is_empty()).then(|| TempToml::new(toml));
        let config_arg = file.as_ref().map(TempToml::arg);
        let all: Vec<&str> = config_arg.iter().map(String::as_str).chain(args.iter().copied()).collect();
        let e = load(&all, env).expect_err(&format!("{toml:?} {args:?} {env:?} should fail"));
        assert_eq!(&e.field, field, "{toml:?} {args:?} {env:?}: {e}");
        assert!(!e.message.is_empty());
    }
    let e = load(&[], &[("KEEL_PARTITIONS", "abc")]).unwrap_err();
    assert_eq!(e.to_string(), "invalid configuration: KEEL_PARTITIONS: invalid digit found in string");
}
