//! Flavor profiles, flavors, availability zone profiles and zones, and the provider
//! capability endpoints, through the API as Octavia answers them; load balancers created
//! with a flavor or a zone.

mod common;

use common::dataplane::eventually;
use common::*;
use serde_json::json;

const FP: &str = "/v2/lbaas/flavorprofiles";
const FL: &str = "/v2/lbaas/flavors";
const AZP: &str = "/v2/lbaas/availabilityzoneprofiles";
const AZ: &str = "/v2/lbaas/availabilityzones";
const POLICY: &str = "Policy does not allow this request to be performed.";

#[test]
fn flavors_and_their_profiles() {
    let (_d, r) = Rocta::start();
    let data = r#"{"loadbalancer_topology": "SINGLE", "compute_flavor": "m1.amphora"}"#;
    let body =
        json!({"flavorprofile": {"name": "fp", "provider_name": "amphora", "flavor_data": data}});
    // Profiles are for administrators.
    assert_fault(
        r.req_as("POST", FP, Some(body.clone()), "p1", Some("member")),
        403,
        POLICY,
    );
    assert_fault(r.req_as("GET", FP, None, "p1", Some("member")), 403, POLICY);
    let (s, b) = r.post(FP, body);
    assert_eq!(s, 201, "{b}");
    let fp = b["flavorprofile"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        b["flavorprofile"],
        json!({"id": fp, "name": "fp", "provider_name": "amphora", "flavor_data": data})
    );
    let bad = |data: &str, provider: &str| {
        r.post(
            FP,
            json!({"flavorprofile": {"name": "x", "provider_name": provider, "flavor_data": data}}),
        )
    };
    assert_fault(
        bad("{not json", "amphora"),
        400,
        "is not a valid option for flavor_data",
    );
    assert_fault(
        bad(r#"{"bogus": 1}"#, "amphora"),
        501,
        "'bogus' was unexpected",
    );
    assert_fault(
        bad(r#"{"loadbalancer_topology": "TRIPLE"}"#, "amphora"),
        501,
        "does not support",
    );
    assert_fault(bad("{}", "nope"), 400, "Provider 'nope' is not enabled.");
    assert_fault(
        r.post(FP, json!({"flavorprofile": {"name": "x"}})),
        400,
        "Mandatory field missing.",
    );

    // Flavors: written by administrators, read by every reader.
    let fbody = json!({"flavor": {"name": "gold", "flavor_profile_id": fp, "description": "d"}});
    assert_fault(
        r.req_as("POST", FL, Some(fbody.clone()), "p1", Some("member")),
        403,
        POLICY,
    );
    let (s, b) = r.post(FL, fbody.clone());
    assert_eq!(s, 201, "{b}");
    let fl = b["flavor"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        b["flavor"],
        json!({"id": fl, "name": "gold", "description": "d", "enabled": true, "flavor_profile_id": fp})
    );
    assert_fault(r.post(FL, fbody), 409, "A flavor of gold already exists.");
    assert_fault(
        r.post(FL, json!({"flavor": {"name": "x", "flavor_profile_id": "00000000-0000-0000-0000-000000000001"}})),
        400,
        "not found",
    );
    let (s, b) = r.req_as("GET", FL, None, "p1", Some("reader"));
    assert_eq!(
        (s, b["flavors"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{b}"
    );
    assert_eq!(b["flavors_links"], json!([]));
    let (s, b) = r.req_as(
        "GET",
        &format!("{FL}/{fl}?fields=name"),
        None,
        "p1",
        Some("reader"),
    );
    assert_eq!((s, &b["flavor"]), (200, &json!({"name": "gold"})));
    assert_fault(
        r.get(&format!("{FL}/00000000-0000-0000-0000-000000000000")),
        404,
        "Flavor 00000000-0000-0000-0000-000000000000 not found.",
    );
    let (s, b) = r.put(
        &format!("{FL}/{fl}"),
        json!({"flavor": {"name": "platinum", "enabled": false}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["flavor"]["name"], &b["flavor"]["enabled"]),
        (&json!("platinum"), &json!(false))
    );
    assert_eq!(r.get(&format!("{FL}/{fl}")).1["flavor"]["description"], "d");
    assert_fault(
        r.put(
            &format!("{FL}/{fl}"),
            json!({"flavor": {"flavor_profile_id": fp}}),
        ),
        400,
        "Unknown attribute",
    );

    // A profile in use keeps its data and provider, and stays.
    let (s, b) = r.put(
        &format!("{FP}/{fp}"),
        json!({"flavorprofile": {"name": "renamed"}}),
    );
    assert_eq!(
        (s, &b["flavorprofile"]["name"]),
        (200, &json!("renamed")),
        "{b}"
    );
    assert_fault(
        r.put(
            &format!("{FP}/{fp}"),
            json!({"flavorprofile": {"flavor_data": "{}"}}),
        ),
        409,
        &format!("Flavor profile {fp} is in use and cannot be modified."),
    );
    assert_fault(
        r.put(
            &format!("{FP}/{fp}"),
            json!({"flavorprofile": {"name": null}}),
        ),
        400,
        "None is not a valid option for name",
    );
    assert_fault(r.delete(&format!("{FP}/{fp}")), 409, "is in use");

    // Load balancers get their flavor: a disabled or unknown one is refused.
    let lb_with = |flavor: &str| {
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET, "flavor_id": flavor}}),
        )
    };
    assert_fault(
        lb_with(&fl),
        400,
        "The selected flavor is not allowed in this deployment",
    );
    assert_fault(
        lb_with("00000000-0000-0000-0000-000000000001"),
        400,
        "Invalid flavor_id",
    );
    r.put(&format!("{FL}/{fl}"), json!({"flavor": {"enabled": true}}));
    let (s, b) = lb_with(&fl);
    assert_eq!(s, 201, "{b}");
    let lb = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    assert_eq!(b["loadbalancer"]["flavor_id"], fl.as_str());
    r.wait_active(&lb);
    assert_eq!(
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).1["loadbalancer"]["flavor_id"],
        fl.as_str()
    );
    assert_fault(
        r.delete(&format!("{FL}/{fl}")),
        409,
        &format!("Flavor {fl} is in use"),
    );
    assert_eq!(r.delete(&format!("/v2/lbaas/loadbalancers/{lb}")).0, 204);
    eventually("load balancer not deleted", || {
        r.get(&format!("/v2/lbaas/loadbalancers/{lb}")).0 == 404
    });
    assert_eq!(r.delete(&format!("{FL}/{fl}")).0, 204);
    assert_fault(r.delete(&format!("{FL}/{fl}")), 404, "not found");
    assert_eq!(r.delete(&format!("{FP}/{fp}")).0, 204);
    assert_eq!(r.get(FP).1["flavorprofiles"], json!([]));

    // ACTIVE_STANDBY is a valid profile, but no load balancer is built SINGLE in its name.
    let (_, b) = r.post(
        FP,
        json!({"flavorprofile": {"name": "ha", "provider_name": "amphora",
            "flavor_data": "{\"loadbalancer_topology\": \"ACTIVE_STANDBY\"}"}}),
    );
    let fp = b["flavorprofile"]["id"].as_str().unwrap().to_string();
    let (_, b) = r.post(
        FL,
        json!({"flavor": {"name": "ha", "flavor_profile_id": fp}}),
    );
    let fl = b["flavor"]["id"].as_str().unwrap().to_string();
    assert_fault(lb_with(&fl), 501, "does not support a requested option");
    assert_eq!(
        r.get("/v2/lbaas/loadbalancers").1["loadbalancers"],
        json!([])
    );
}

#[test]
fn availability_zones_and_their_profiles() {
    let (_d, r) = Rocta::start();
    let net = "11111111-2222-3333-4444-000000000001";
    let data = format!(r#"{{"compute_zone": "nova", "valid_vip_networks": ["{net}"]}}"#);
    let (s, b) = r.post(AZP, json!({"availability_zone_profile": {"name": "azp", "provider_name": "amphora", "availability_zone_data": data}}));
    assert_eq!(s, 201, "{b}");
    let azp = b["availability_zone_profile"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_fault(
        r.post(AZP, json!({"availability_zone_profile": {"name": "x", "provider_name": "amphora", "availability_zone_data": r#"{"valid_vip_networks": "n1"}"#}})),
        501,
        "does not support",
    );
    let (s, b) = r.post(
        AZ,
        json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": azp}}),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["availability_zone"],
        json!({"name": "az1", "description": null, "enabled": true, "availability_zone_profile_id": azp})
    );
    assert_fault(
        r.post(
            AZ,
            json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": azp}}),
        ),
        409,
        "A availability zone of az1 already exists.",
    );
    let (s, b) = r.req_as("GET", &format!("{AZ}/az1"), None, "p1", Some("member"));
    assert_eq!(
        (s, &b["availability_zone"]["name"]),
        (200, &json!("az1")),
        "{b}"
    );
    let (s, b) = r.put(
        &format!("{AZ}/az1"),
        json!({"availability_zone": {"description": "zone one"}}),
    );
    assert_eq!(
        (s, &b["availability_zone"]["description"]),
        (200, &json!("zone one")),
        "{b}"
    );
    assert_fault(
        r.put(
            &format!("{AZ}/az1"),
            json!({"availability_zone": {"name": "az2"}}),
        ),
        400,
        "Unknown attribute",
    );
    // The zone's valid_vip_networks restrict the VIP network.
    assert_fault(
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET, "availability_zone": "az1"}}),
        ),
        400,
        "Supplied VIP network_id is not allowed by the configuration of this deployment.",
    );
    let (s, b) = r.post(
        "/v2/lbaas/loadbalancers",
        json!({"loadbalancer": {"vip_network_id": net, "availability_zone": "az1"}}),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["loadbalancer"]["availability_zone"], "az1");
    assert_fault(
        r.post(
            "/v2/lbaas/loadbalancers",
            json!({"loadbalancer": {"vip_subnet_id": SUBNET, "availability_zone": "az9"}}),
        ),
        400,
        "Invalid availability zone",
    );
    assert_fault(
        r.delete(&format!("{AZ}/az1")),
        409,
        "Availability Zone az1 is in use",
    );
    assert_fault(r.delete(&format!("{AZP}/{azp}")), 409, "is in use");
    let (s, b) = r.get(&format!("{AZ}?fields=name"));
    assert_eq!(
        (s, &b["availability_zones"]),
        (200, &json!([{"name": "az1"}])),
        "{b}"
    );
    // Zones page by name (they have no id).
    let (s, b) = r.post(
        AZ,
        json!({"availability_zone": {"name": "az2", "availability_zone_profile_id": azp}}),
    );
    assert_eq!(s, 201, "{b}");
    let (_, b) = r.get(&format!("{AZ}?limit=1"));
    assert_eq!(b["availability_zones"][0]["name"], "az1", "{b}");
    let next = b["availability_zones_links"][0]["href"].as_str().unwrap();
    assert!(next.ends_with("marker=az1"), "{next}");
    let (_, b) = r.get(&format!("{AZ}?limit=1&marker=az1"));
    assert_eq!(b["availability_zones"][0]["name"], "az2", "{b}");
}

#[test]
fn provider_capabilities() {
    let (_d, r) = Rocta::start();
    let path = "/v2/lbaas/providers/amphora/flavor_capabilities";
    let (s, b) = r.get(path);
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> = b["flavor_capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"loadbalancer_topology") && names.contains(&"compute_flavor"),
        "{names:?}"
    );
    let (_, b) = r.get(&format!("{path}?fields=name&name=compute_flavor"));
    assert_eq!(
        b["flavor_capabilities"],
        json!([{"name": "compute_flavor"}])
    );
    let (s, b) = r.get("/v2/lbaas/providers/amphora/availability_zone_capabilities");
    assert_eq!(s, 200);
    assert!(b["availability_zone_capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "compute_zone"));
    assert_fault(
        r.get("/v2/lbaas/providers/nope/flavor_capabilities"),
        400,
        "Provider 'nope' is not enabled.",
    );
    assert_fault(
        r.req_as("GET", path, None, "p1", Some("member")),
        403,
        POLICY,
    );
}

#[test]
fn the_neutron_view_serves_the_network_drivers_networks() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_real(dir.path());
    let (subnet, network) = (
        "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5b",
        "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a",
    );
    let (s, b) = r.get("/networking/");
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["versions"][0]["id"], "v2.0");
    assert!(b["versions"][0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/networking/v2.0/"));
    for prefix in ["/v2.0", "/networking/v2.0"] {
        let (s, b) = r.get(&format!("{prefix}/subnets?name=public"));
        assert_eq!(s, 200, "{b}");
        let sn = &b["subnets"][0];
        assert_eq!(sn["id"], subnet);
        assert_eq!(sn["network_id"], network);
        assert_eq!(sn["cidr"], "127.10.0.0/16");
        assert_eq!(sn["ip_version"], 4);
        // A repeated filter key is any of its values; fields select.
        let (_, b) = r.get(&format!(
            "{prefix}/subnets?id=nope&id={subnet}&fields=id&fields=cidr"
        ));
        assert_eq!(
            b,
            json!({"subnets": [{"id": subnet, "cidr": "127.10.0.0/16"}]})
        );
        assert_eq!(
            r.get(&format!("{prefix}/subnets?name=other")).1,
            json!({"subnets": []})
        );
        let (s, b) = r.get(&format!("{prefix}/networks/{network}"));
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["network"]["subnets"], json!([subnet]));
        assert_eq!(b["network"]["router:external"], true);
        let (s, b) = r.get(&format!("{prefix}/subnets/{network}"));
        assert_eq!(s, 404);
        assert_eq!(b["NeutronError"]["type"], "SubnetNotFound");
        let (s, b) = r.get(&format!("{prefix}/networks?colour=red"));
        assert_eq!(s, 400, "{b}");
        assert_eq!(b["NeutronError"]["type"], "HTTPBadRequest");
        assert_eq!(r.get(&format!("{prefix}/ports")).1, json!({"ports": []}));
    }
}

#[test]
fn profiles_name_what_the_drivers_have() {
    // The local compute driver has one host and no zones; the loopback network one network.
    let dir = tempfile::tempdir().unwrap();
    let r = Rocta::start_real(dir.path());
    let public = "0b0a1a2f-5c1e-4c57-9d33-6a1f2e3d4c5a";
    let profile = |data: &str| {
        r.post(
            AZP,
            json!({"availability_zone_profile": {"name": "p", "provider_name": "amphora",
                "availability_zone_data": data}}),
        )
    };
    for (data, why) in [
        (
            r#"{"compute_zone": "nova"}"#,
            "Compute availability zone nova not found.",
        ),
        (
            r#"{"valid_vip_networks": ["11111111-2222-3333-4444-000000000001"]}"#,
            "Network 11111111-2222-3333-4444-000000000001 not found.",
        ),
        (
            r#"{"management_network": "mgmt"}"#,
            "Network mgmt not found: amphorae of the local compute driver boot on this host's loopback.",
        ),
    ] {
        assert_fault(
            profile(data),
            400,
            &format!("Invalid availability zone data: {why}"),
        );
    }
    assert_eq!(r.get(AZP).1["availability_zone_profiles"], json!([]));
    let (s, b) = profile(&format!(r#"{{"valid_vip_networks": ["{public}"]}}"#));
    assert_eq!(s, 201, "{b}");
    // An update is checked as a create.
    let id = b["availability_zone_profile"]["id"].as_str().unwrap();
    assert_fault(
        r.put(
            &format!("{AZP}/{id}"),
            json!({"availability_zone_profile": {"availability_zone_data": r#"{"compute_zone": "z"}"#}}),
        ),
        400,
        "Compute availability zone z not found.",
    );
    // Flavors: no compute flavors, images or SR-IOV here; a topology is fine.
    let flavor = |data: &str| {
        r.post(
            FP,
            json!({"flavorprofile": {"name": "f", "provider_name": "amphora", "flavor_data": data}}),
        )
    };
    for (data, why) in [
        (
            r#"{"compute_flavor": "m1.amphora"}"#,
            "Compute flavor m1.amphora not found",
        ),
        (
            r#"{"amp_image_tag": "amphora"}"#,
            "Failed to find an image with tag amphora",
        ),
        (
            r#"{"sriov_vip": true}"#,
            "sriov_vip: the network driver cannot make SR-IOV VIP ports.",
        ),
    ] {
        assert_fault(flavor(data), 400, &format!("Invalid flavor data: {why}"));
    }
    let (s, b) = flavor(r#"{"loadbalancer_topology": "SINGLE", "sriov_vip": false}"#);
    assert_eq!(s, 201, "{b}");
}
