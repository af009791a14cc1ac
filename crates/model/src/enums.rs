//! Octavia's string enums. Each renders and parses exactly as Octavia spells it, and lists its
//! values in Octavia's order so validation messages match ("Value should be one of: ...").

use std::fmt;

/// Defines a string enum with `as_str`, `parse`, `ALL` and serde as the wire string.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in the order Octavia lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            /// Parses the wire spelling (exact, case-sensitive, as Octavia).
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }

            /// The values joined for an error message.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let values: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                schemars::json_schema!({ "type": "string", "enum": values })
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("invalid {}: {s}", stringify!($name)))
                })
            }
        }
    };
}

string_enum!(
    /// Where an object is in its provisioning life cycle (Octavia's `provisioning_status`).
    ProvisioningStatus {
        Active => "ACTIVE",
        PendingCreate => "PENDING_CREATE",
        PendingUpdate => "PENDING_UPDATE",
        PendingDelete => "PENDING_DELETE",
        Deleted => "DELETED",
        Error => "ERROR",
    }
);

impl ProvisioningStatus {
    /// `PENDING_*`: a flow owns the object.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Self::PendingCreate | Self::PendingUpdate | Self::PendingDelete
        )
    }
}

string_enum!(
    /// What the data plane reports (Octavia's `operating_status`).
    OperatingStatus {
        Online => "ONLINE",
        Offline => "OFFLINE",
        Degraded => "DEGRADED",
        Error => "ERROR",
        Draining => "DRAINING",
        NoMonitor => "NO_MONITOR",
    }
);

string_enum!(
    /// Listener protocols, in the order of Octavia's validation message.
    ListenerProtocol {
        Http => "HTTP",
        Prometheus => "PROMETHEUS",
        Https => "HTTPS",
        TerminatedHttps => "TERMINATED_HTTPS",
        Tcp => "TCP",
        Udp => "UDP",
        Sctp => "SCTP",
    }
);

impl ListenerProtocol {
    /// The L4 protocol used for the listener port uniqueness rule.
    pub fn l4(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            _ => "TCP",
        }
    }

    /// HTTP-mode listeners (L7 policies, header insertion).
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::TerminatedHttps)
    }

    /// Listeners served by keepalived LVS rather than HAProxy.
    pub fn is_lvs(self) -> bool {
        matches!(self, Self::Udp | Self::Sctp)
    }
}

string_enum!(
    /// Pool protocols.
    PoolProtocol {
        Http => "HTTP",
        Https => "HTTPS",
        Proxy => "PROXY",
        ProxyV2 => "PROXYV2",
        Tcp => "TCP",
        Udp => "UDP",
        Sctp => "SCTP",
    }
);

impl PoolProtocol {
    /// UDP and SCTP pools follow the LVS rules.
    pub fn is_lvs(self) -> bool {
        matches!(self, Self::Udp | Self::Sctp)
    }
}

string_enum!(
    /// Pool balancing algorithms.
    LbAlgorithm {
        RoundRobin => "ROUND_ROBIN",
        LeastConnections => "LEAST_CONNECTIONS",
        SourceIp => "SOURCE_IP",
        SourceIpPort => "SOURCE_IP_PORT",
    }
);

string_enum!(
    /// Session persistence types.
    PersistenceType {
        SourceIp => "SOURCE_IP",
        HttpCookie => "HTTP_COOKIE",
        AppCookie => "APP_COOKIE",
    }
);

string_enum!(
    /// Health monitor types.
    HealthMonitorType {
        Http => "HTTP",
        Https => "HTTPS",
        Ping => "PING",
        Tcp => "TCP",
        TlsHello => "TLS-HELLO",
        UdpConnect => "UDP-CONNECT",
        Sctp => "SCTP",
    }
);

impl HealthMonitorType {
    /// HTTP-style monitors accept http_method, url_path and expected_codes.
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }
}

string_enum!(
    /// HTTP methods a health monitor may use.
    HttpMethod {
        Connect => "CONNECT",
        Delete => "DELETE",
        Get => "GET",
        Head => "HEAD",
        Options => "OPTIONS",
        Patch => "PATCH",
        Post => "POST",
        Put => "PUT",
        Trace => "TRACE",
    }
);

string_enum!(
    /// L7 policy actions.
    L7PolicyAction {
        RedirectToPool => "REDIRECT_TO_POOL",
        RedirectToUrl => "REDIRECT_TO_URL",
        RedirectPrefix => "REDIRECT_PREFIX",
        Reject => "REJECT",
    }
);

string_enum!(
    /// L7 rule types.
    L7RuleType {
        HostName => "HOST_NAME",
        Path => "PATH",
        FileType => "FILE_TYPE",
        Header => "HEADER",
        Cookie => "COOKIE",
        SslConnHasCert => "SSL_CONN_HAS_CERT",
        SslVerifyResult => "SSL_VERIFY_RESULT",
        SslDnField => "SSL_DN_FIELD",
    }
);

string_enum!(
    /// L7 rule comparisons.
    L7CompareType {
        Regex => "REGEX",
        StartsWith => "STARTS_WITH",
        EndsWith => "ENDS_WITH",
        Contains => "CONTAINS",
        EqualTo => "EQUAL_TO",
    }
);

string_enum!(
    /// TLS client authentication modes of a TERMINATED_HTTPS listener.
    ClientAuthentication {
        None => "NONE",
        Optional => "OPTIONAL",
        Mandatory => "MANDATORY",
    }
);

string_enum!(
    /// Amphora life cycle (Octavia's amphora `status`).
    AmphoraStatus {
        PendingCreate => "PENDING_CREATE",
        Booting => "BOOTING",
        Ready => "READY",
        Allocated => "ALLOCATED",
        PendingDelete => "PENDING_DELETE",
        Deleted => "DELETED",
        Error => "ERROR",
        FailoverStopped => "FAILOVER_STOPPED",
    }
);

string_enum!(
    /// Amphora role in its load balancer's topology.
    AmphoraRole {
        Master => "MASTER",
        Backup => "BACKUP",
        Standalone => "STANDALONE",
    }
);

string_enum!(
    /// Load balancer topology.
    Topology {
        Single => "SINGLE",
        ActiveStandby => "ACTIVE_STANDBY",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_protocol_choices_match_octavia_message() {
        assert_eq!(
            ListenerProtocol::choices(),
            "HTTP, PROMETHEUS, HTTPS, TERMINATED_HTTPS, TCP, UDP, SCTP"
        );
    }

    #[test]
    fn round_trips_through_serde() {
        for v in HealthMonitorType::ALL {
            let s = serde_json::to_string(v).unwrap();
            assert_eq!(serde_json::from_str::<HealthMonitorType>(&s).unwrap(), *v);
        }
        assert!(serde_json::from_str::<HealthMonitorType>("\"tls-hello\"").is_err());
    }
}
