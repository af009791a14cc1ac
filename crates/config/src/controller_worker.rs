//! `[controller_worker]`: the worker, its drivers and the topology.

use serde::Deserialize;

/// `[controller_worker]`: the worker and the drivers it uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerWorker {
    /// `SINGLE` (one amphora per load balancer) or `ACTIVE_STANDBY` (two, the VIP moved
    /// between them by keepalived's VRRP; needs the netns drivers). A flavor's
    /// `loadbalancer_topology` overrides it.
    pub loadbalancer_topology: String,
    /// The networks amphorae boot on, the first carrying the management address (Octavia's
    /// option). The netns drivers have one: the management network (`[netns]
    /// management_network_id`); empty means it.
    pub amp_boot_network_list: Vec<String>,
    /// Jobs a worker process runs at once.
    pub workers: usize,
    /// Seconds a claimed job stays owned without renewal; after that another worker resumes it.
    pub job_lease_seconds: u64,
    /// How often a worker looks for jobs posted by another process, in milliseconds.
    pub job_poll_interval_ms: u64,
    /// `local` (an agent process per amphora on this host, sharing its loopback), `netns` (an
    /// amphora is a network namespace of its own on the `[netns]` management network; needs
    /// root and `network_driver = "netns"`), `nova` (a Nova server booted from the Glance
    /// image tagged `amp_image_tag`, its management port made in Neutron on the first of
    /// `amp_boot_network_list`; `[service_auth]`, `[nova]`, `[glance]`, `[neutron]`) or `noop`
    /// (records only; tests).
    pub compute_driver: ComputeDriver,
    /// `loopback` (VIPs in 127.10.0.0/16 from subnet `public`), `netns` (VIPs from the
    /// `[[netns.networks]]` subnets, plugged into the amphorae's namespaces), `neutron` (VIP
    /// ports in Neutron, each amphora's port on the VIP subnet with the VIP as an allowed
    /// address pair and the load balancer's security group, attached through Nova; with
    /// `compute_driver = "nova"`) or `noop` (any subnet id).
    pub network_driver: NetworkDriver,
    /// `rest` (the agent API over mutual TLS) or `noop`.
    pub amphora_driver: AmphoraDriver,
    /// Whether the configuration file names `compute_driver` or `network_driver`.
    #[serde(skip)]
    pub placement_chosen: bool,
    /// `local` (rocta's own CAs in the data dir) or `noop`.
    pub cert_manager: CertManager,
    /// The Glance tag of the amphora image (`compute_driver = "nova"`): the newest active
    /// image with it is booted.
    pub amp_image_tag: String,
    /// Only images of this project count; empty = any owner.
    pub amp_image_owner_id: String,
    /// The Nova flavor of amphorae (a flavor's `compute_flavor` overrides it).
    pub amp_flavor_id: String,
    /// A Nova key pair for amphorae (operators' SSH access); empty = none.
    pub amp_ssh_key_name: String,
    /// Security groups of the amphorae's management ports; empty = the project's default.
    pub amp_secgroup_list: Vec<String>,
    /// How long to wait for a booting amphora's server to go ACTIVE: polled every
    /// `amp_active_wait_sec` seconds, `amp_active_retries` times.
    pub amp_active_retries: u32,
    pub amp_active_wait_sec: u64,
    /// Give the config drive's files as cloud-init user data (`#cloud-config` `write_files`)
    /// instead of files on the config drive.
    pub user_data_config_drive: bool,
}

/// Declares a driver choice: parsed from its name, with the names available in the error.
macro_rules! driver_choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $($variant),+
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                match s.as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown driver {other:?} (available: {})",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

driver_choice!(
    /// Where amphorae run.
    ComputeDriver { Local = "local", Netns = "netns", Nova = "nova", Noop = "noop" }
);
driver_choice!(
    /// VIPs and ports.
    NetworkDriver { Loopback = "loopback", Netns = "netns", Neutron = "neutron", Noop = "noop" }
);
driver_choice!(
    /// How the controller talks to the agents.
    AmphoraDriver { Rest = "rest", Noop = "noop" }
);
driver_choice!(
    /// rocta's PKI.
    CertManager { Local = "local", Noop = "noop" }
);

impl ControllerWorker {
    /// The placement when the configuration does not choose one: amphorae in network
    /// namespaces (`netns`) when running as root, which they need, else on loopback (`local`).
    pub fn default_placement(&mut self, root: bool) {
        if !self.placement_chosen && root {
            self.compute_driver = ComputeDriver::Netns;
            self.network_driver = NetworkDriver::Netns;
        }
    }

    /// The real drivers of one placement (`--drivers local|netns`).
    pub fn real(&mut self, netns: bool) {
        (self.compute_driver, self.network_driver) = if netns {
            (ComputeDriver::Netns, NetworkDriver::Netns)
        } else {
            (ComputeDriver::Local, NetworkDriver::Loopback)
        };
        self.amphora_driver = AmphoraDriver::Rest;
        self.cert_manager = CertManager::Local;
    }

    /// Every driver `noop` (`--drivers noop`: tests and control-plane benchmarks).
    pub fn all_noop(&mut self) {
        self.compute_driver = ComputeDriver::Noop;
        self.network_driver = NetworkDriver::Noop;
        self.amphora_driver = AmphoraDriver::Noop;
        self.cert_manager = CertManager::Noop;
    }
}

impl Default for ControllerWorker {
    fn default() -> Self {
        ControllerWorker {
            loadbalancer_topology: "SINGLE".into(),
            amp_boot_network_list: Vec::new(),
            workers: 8,
            job_lease_seconds: 30,
            job_poll_interval_ms: 200,
            compute_driver: ComputeDriver::Local,
            network_driver: NetworkDriver::Loopback,
            amphora_driver: AmphoraDriver::Rest,
            cert_manager: CertManager::Local,
            placement_chosen: false,
            amp_image_tag: String::new(),
            amp_image_owner_id: String::new(),
            amp_flavor_id: String::new(),
            amp_ssh_key_name: String::new(),
            amp_secgroup_list: Vec::new(),
            amp_active_retries: 30,
            amp_active_wait_sec: 10,
            user_data_config_drive: false,
        }
    }
}
