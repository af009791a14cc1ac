//! The resources the client commands drive, as data: each resource's API path and key, the
//! columns its `list` shows, and the flags of `create`, `set` and `list` with the API field each
//! one sets. Flag names are python-octaviaclient's (`openstack loadbalancer ...`).

/// A resource kind (for references given by name or id).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum R {
    Lb,
    Listener,
    Pool,
    Member,
    Hm,
    L7Policy,
    L7Rule,
}

/// How a flag's value becomes an API field.
#[derive(Clone, Copy)]
pub enum K {
    Str,
    Int,
    Num,
    /// A switch that sets the field to true.
    True,
    /// `--<long>` sets true, `--<off>` sets false.
    OnOff(&'static str),
    /// Repeatable; the values make a list.
    List,
    /// `key=value[,key=value]`, repeatable; makes an object (numbers and booleans typed).
    Kv,
    /// `key=value[,key=value]`, repeatable; makes an object of strings.
    Dict,
    /// A name or id of another resource; the field gets its id.
    Ref(R),
}

/// One flag.
#[derive(Clone, Copy)]
pub struct Flag {
    pub long: &'static str,
    pub field: &'static str,
    pub kind: K,
    pub required: bool,
}

const fn o(long: &'static str, field: &'static str, kind: K) -> Flag {
    Flag {
        long,
        field,
        kind,
        required: false,
    }
}

const fn r(long: &'static str, field: &'static str, kind: K) -> Flag {
    Flag {
        long,
        field,
        kind,
        required: true,
    }
}

/// A positional argument naming another resource (the owner on create, the parent path).
#[derive(Clone, Copy)]
pub struct Owner {
    pub arg: &'static str,
    pub field: &'static str,
    pub kind: R,
}

/// One resource.
pub struct Res {
    pub kind: R,
    /// The command (`rocta <cmd> ...`).
    pub cmd: &'static str,
    /// For messages ("load balancer").
    pub title: &'static str,
    pub key: &'static str,
    pub plural: &'static str,
    /// The collection path; `{parent}` is the parent's id for members and rules.
    pub path: &'static str,
    /// The parent resource, given first on every command (members: pool; rules: policy).
    pub parent: Option<Owner>,
    /// The positional owner on create (listener: its load balancer).
    pub owner: Option<Owner>,
    pub columns: &'static [&'static str],
    pub create: &'static [Flag],
    pub set: &'static [Flag],
    pub filters: &'static [Flag],
}

const ENABLE: Flag = o("enable", "admin_state_up", K::OnOff("disable"));
const TAG: Flag = o("tag", "tags", K::List);
const NAME: Flag = o("name", "name", K::Str);
const DESCRIPTION: Flag = o("description", "description", K::Str);

macro_rules! flags {
    ($($f:expr),* $(,)?) => { &[$($f),*] };
}

const LB_SET: &[Flag] = flags![
    NAME,
    DESCRIPTION,
    o("vip-qos-policy-id", "vip_qos_policy_id", K::Str),
    ENABLE,
    TAG,
];

pub const LB: Res = Res {
    kind: R::Lb,
    cmd: "loadbalancer",
    title: "load balancer",
    key: "loadbalancer",
    plural: "loadbalancers",
    path: "/v2/lbaas/loadbalancers",
    parent: None,
    owner: None,
    columns: &[
        "id",
        "name",
        "project_id",
        "vip_address",
        "provisioning_status",
        "operating_status",
        "provider",
    ],
    create: flags![
        NAME,
        DESCRIPTION,
        o("vip-address", "vip_address", K::Str),
        o("vip-port-id", "vip_port_id", K::Str),
        o("vip-subnet-id", "vip_subnet_id", K::Str),
        o("vip-network-id", "vip_network_id", K::Str),
        o("vip-qos-policy-id", "vip_qos_policy_id", K::Str),
        o("provider", "provider", K::Str),
        o("availability-zone", "availability_zone", K::Str),
        o("flavor", "flavor_id", K::Str),
        ENABLE,
        TAG,
    ],
    set: LB_SET,
    filters: flags![
        NAME,
        o("vip-address", "vip_address", K::Str),
        o("provisioning-status", "provisioning_status", K::Str),
        o("operating-status", "operating_status", K::Str),
        o("provider", "provider", K::Str),
    ],
};

macro_rules! listener_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            NAME,
            DESCRIPTION,
            o("connection-limit", "connection_limit", K::Int),
            o("default-pool", "default_pool_id", K::Ref(R::Pool)),
            o("default-tls-container-ref", "default_tls_container_ref", K::Str),
            o("sni-container-refs", "sni_container_refs", K::List),
            o("insert-headers", "insert_headers", K::Dict),
            o("timeout-client-data", "timeout_client_data", K::Int),
            o("timeout-member-connect", "timeout_member_connect", K::Int),
            o("timeout-member-data", "timeout_member_data", K::Int),
            o("timeout-tcp-inspect", "timeout_tcp_inspect", K::Int),
            o("client-ca-tls-container-ref", "client_ca_tls_container_ref", K::Str),
            o("client-authentication", "client_authentication", K::Str),
            o("client-crl-container-ref", "client_crl_container_ref", K::Str),
            o("allowed-cidr", "allowed_cidrs", K::List),
            o("tls-ciphers", "tls_ciphers", K::Str),
            o("tls-version", "tls_versions", K::List),
            o("alpn-protocol", "alpn_protocols", K::List),
            o("hsts-max-age", "hsts_max_age", K::Int),
            o("hsts-include-subdomains", "hsts_include_subdomains", K::True),
            o("hsts-preload", "hsts_preload", K::True),
            ENABLE,
            TAG,
        ]
    };
}

pub const LISTENER: Res = Res {
    kind: R::Listener,
    cmd: "listener",
    title: "listener",
    key: "listener",
    plural: "listeners",
    path: "/v2/lbaas/listeners",
    parent: None,
    owner: Some(Owner {
        arg: "loadbalancer",
        field: "loadbalancer_id",
        kind: R::Lb,
    }),
    columns: &[
        "id",
        "default_pool_id",
        "name",
        "project_id",
        "protocol",
        "protocol_port",
        "admin_state_up",
    ],
    create: listener_common![
        r("protocol", "protocol", K::Str),
        r("protocol-port", "protocol_port", K::Int),
    ],
    set: listener_common![],
    filters: flags![
        NAME,
        o("loadbalancer", "loadbalancer_id", K::Ref(R::Lb)),
        o("protocol", "protocol", K::Str),
        o("protocol-port", "protocol_port", K::Int),
    ],
};

macro_rules! pool_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            NAME,
            DESCRIPTION,
            o("session-persistence", "session_persistence", K::Kv),
            o("tls-container-ref", "tls_container_ref", K::Str),
            o("ca-tls-container-ref", "ca_tls_container_ref", K::Str),
            o("crl-container-ref", "crl_container_ref", K::Str),
            o("enable-tls", "tls_enabled", K::OnOff("disable-tls")),
            o("tls-ciphers", "tls_ciphers", K::Str),
            o("tls-version", "tls_versions", K::List),
            o("alpn-protocol", "alpn_protocols", K::List),
            ENABLE,
            TAG,
        ]
    };
}

pub const POOL: Res = Res {
    kind: R::Pool,
    cmd: "pool",
    title: "pool",
    key: "pool",
    plural: "pools",
    path: "/v2/lbaas/pools",
    parent: None,
    owner: None,
    columns: &[
        "id",
        "name",
        "project_id",
        "provisioning_status",
        "protocol",
        "lb_algorithm",
        "admin_state_up",
    ],
    create: pool_common![
        r("protocol", "protocol", K::Str),
        r("lb-algorithm", "lb_algorithm", K::Str),
        o("listener", "listener_id", K::Ref(R::Listener)),
        o("loadbalancer", "loadbalancer_id", K::Ref(R::Lb)),
    ],
    set: pool_common![o("lb-algorithm", "lb_algorithm", K::Str)],
    filters: flags![NAME, o("loadbalancer", "loadbalancer_id", K::Ref(R::Lb))],
};

const POOL_PARENT: Owner = Owner {
    arg: "pool",
    field: "pool_id",
    kind: R::Pool,
};

macro_rules! member_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            NAME,
            o("weight", "weight", K::Int),
            o("monitor-address", "monitor_address", K::Str),
            o("monitor-port", "monitor_port", K::Int),
            o("enable-backup", "backup", K::OnOff("disable-backup")),
            ENABLE,
            TAG,
        ]
    };
}

pub const MEMBER: Res = Res {
    kind: R::Member,
    cmd: "member",
    title: "member",
    key: "member",
    plural: "members",
    path: "/v2/lbaas/pools/{parent}/members",
    parent: Some(POOL_PARENT),
    owner: None,
    columns: &[
        "id",
        "name",
        "project_id",
        "provisioning_status",
        "address",
        "protocol_port",
        "operating_status",
        "weight",
    ],
    create: member_common![
        r("address", "address", K::Str),
        r("protocol-port", "protocol_port", K::Int),
        o("subnet-id", "subnet_id", K::Str),
    ],
    set: member_common![],
    filters: flags![NAME, o("address", "address", K::Str)],
};

/// The flags of one member in `member batch set --member k=v,...` (API field names).
pub const BATCH_MEMBER: &[&str] = &[
    "address",
    "protocol_port",
    "name",
    "weight",
    "subnet_id",
    "monitor_address",
    "monitor_port",
    "backup",
    "admin_state_up",
];

macro_rules! hm_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            NAME,
            o("domain-name", "domain_name", K::Str),
            o("expected-codes", "expected_codes", K::Str),
            o("http-method", "http_method", K::Str),
            o("http-version", "http_version", K::Num),
            o("max-retries-down", "max_retries_down", K::Int),
            o("url-path", "url_path", K::Str),
            ENABLE,
            TAG,
        ]
    };
}

pub const HM: Res = Res {
    kind: R::Hm,
    cmd: "healthmonitor",
    title: "health monitor",
    key: "healthmonitor",
    plural: "healthmonitors",
    path: "/v2/lbaas/healthmonitors",
    parent: None,
    owner: Some(Owner {
        arg: "pool",
        field: "pool_id",
        kind: R::Pool,
    }),
    columns: &["id", "name", "project_id", "type", "admin_state_up"],
    create: hm_common![
        r("type", "type", K::Str),
        r("delay", "delay", K::Int),
        r("timeout", "timeout", K::Int),
        r("max-retries", "max_retries", K::Int),
    ],
    set: hm_common![
        o("delay", "delay", K::Int),
        o("timeout", "timeout", K::Int),
        o("max-retries", "max_retries", K::Int),
    ],
    filters: flags![NAME],
};

macro_rules! policy_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            NAME,
            DESCRIPTION,
            o("redirect-pool", "redirect_pool_id", K::Ref(R::Pool)),
            o("redirect-url", "redirect_url", K::Str),
            o("redirect-prefix", "redirect_prefix", K::Str),
            o("redirect-http-code", "redirect_http_code", K::Int),
            o("position", "position", K::Int),
            ENABLE,
            TAG,
        ]
    };
}

pub const L7POLICY: Res = Res {
    kind: R::L7Policy,
    cmd: "l7policy",
    title: "L7 policy",
    key: "l7policy",
    plural: "l7policies",
    path: "/v2/lbaas/l7policies",
    parent: None,
    owner: Some(Owner {
        arg: "listener",
        field: "listener_id",
        kind: R::Listener,
    }),
    columns: &[
        "id",
        "name",
        "project_id",
        "provisioning_status",
        "action",
        "position",
        "admin_state_up",
    ],
    create: policy_common![r("action", "action", K::Str)],
    set: policy_common![o("action", "action", K::Str)],
    filters: flags![NAME, o("listener", "listener_id", K::Ref(R::Listener))],
};

macro_rules! rule_common {
    ($($f:expr),* $(,)?) => {
        flags![
            $($f,)*
            o("key", "key", K::Str),
            o("invert", "invert", K::OnOff("no-invert")),
            ENABLE,
            TAG,
        ]
    };
}

pub const L7RULE: Res = Res {
    kind: R::L7Rule,
    cmd: "l7rule",
    title: "L7 rule",
    key: "rule",
    plural: "rules",
    path: "/v2/lbaas/l7policies/{parent}/rules",
    parent: Some(Owner {
        arg: "l7policy",
        field: "l7policy_id",
        kind: R::L7Policy,
    }),
    owner: None,
    columns: &[
        "id",
        "project_id",
        "provisioning_status",
        "compare_type",
        "type",
        "key",
        "value",
        "invert",
    ],
    create: rule_common![
        r("type", "type", K::Str),
        r("compare-type", "compare_type", K::Str),
        r("value", "value", K::Str),
    ],
    set: rule_common![
        o("type", "type", K::Str),
        o("compare-type", "compare_type", K::Str),
        o("value", "value", K::Str),
    ],
    filters: flags![],
};

/// Every resource with CRUD commands.
pub const ALL: [&Res; 7] = [&LB, &LISTENER, &POOL, &MEMBER, &HM, &L7POLICY, &L7RULE];

pub fn of(kind: R) -> &'static Res {
    ALL.iter().copied().find(|r| r.kind == kind).unwrap_or(&LB)
}
