//! `template.yaml` and the local gateway cannot drift apart: every function crate has a SAM
//! resource built with cargo-lambda, and every route the template declares is served by the
//! same function locally (and the other way round).

use std::collections::BTreeSet;
use std::path::Path;

use serde_norway::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The resource name a CloudFormation intrinsic (`!Ref X`, `!GetAtt X.Arn`, `${X.Arn}` in a
/// `!Sub`) points at.
fn referenced(v: &Value) -> Vec<String> {
    let text = match v {
        Value::Tagged(t) => match &t.value {
            Value::String(s) => s.clone(),
            other => serde_norway::to_string(other).unwrap(),
        },
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).unwrap(),
    };
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap();
        out.push(after[..end].split('.').next().unwrap().to_owned());
        rest = &after[end..];
    }
    if out.is_empty() {
        out.push(text.split('.').next().unwrap().to_owned());
    }
    out
}

fn resources(t: &Value) -> &serde_norway::Mapping {
    t["Resources"].as_mapping().unwrap()
}

fn code_uri(t: &Value, resource: &str) -> String {
    t["Resources"][resource]["Properties"]["CodeUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{resource} has no CodeUri"))
        .to_owned()
}

#[test]
fn every_function_crate_has_a_resource_built_with_cargo_lambda() {
    let t = template();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let crates: BTreeSet<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| format!("functions/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let mut in_template = BTreeSet::new();
    for (name, r) in resources(&t) {
        if r["Type"] == "AWS::Serverless::Function" {
            assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{name:?}");
            in_template.insert(r["Properties"]["CodeUri"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(crates, in_template);
    assert_eq!(t["Globals"]["Function"]["Runtime"], "provided.al2023");
    assert_eq!(t["Globals"]["Function"]["Handler"], "bootstrap");
    assert_eq!(t["Globals"]["Function"]["Architectures"][0], "arm64");
    assert_eq!(t["Parameters"]["MongoUri"]["NoEcho"], true);
}

#[test]
fn http_routes_match_the_gateway() {
    let t = template();
    let mut declared = BTreeSet::new();
    for (name, r) in resources(&t) {
        let Some(events) = r["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, e) in events {
            if e["Type"] == "HttpApi" {
                let key = format!(
                    "{} {}",
                    e["Properties"]["Method"].as_str().unwrap(),
                    e["Properties"]["Path"].as_str().unwrap()
                );
                declared.insert((key, code_uri(&t, name.as_str().unwrap())));
            }
        }
    }
    let served: BTreeSet<(String, String)> = local_gateway::routes::http_routes()
        .iter()
        .map(|r| (r.route_key.to_owned(), format!("functions/{}", r.function)))
        .collect();
    assert_eq!(declared, served);
}

#[test]
fn websocket_routes_match_the_gateway() {
    let t = template();
    let ws_api = resources(&t)
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::ApiGatewayV2::Api")
        .map(|(_, r)| r)
        .unwrap();
    assert_eq!(ws_api["Properties"]["ProtocolType"], "WEBSOCKET");
    assert_eq!(
        ws_api["Properties"]["RouteSelectionExpression"],
        "$request.body.action"
    );
    let mut declared = BTreeSet::new();
    let mut route_names = BTreeSet::new();
    for (name, r) in resources(&t) {
        if r["Type"] != "AWS::ApiGatewayV2::Route" {
            continue;
        }
        route_names.insert(name.as_str().unwrap().to_owned());
        let key = r["Properties"]["RouteKey"].as_str().unwrap().to_owned();
        let integration = referenced(&r["Properties"]["Target"]).remove(0);
        let uri = &t["Resources"][integration.as_str()]["Properties"]["IntegrationUri"];
        let function = referenced(uri)
            .into_iter()
            .find(|n| t["Resources"][n.as_str()]["Type"] == "AWS::Serverless::Function")
            .unwrap_or_else(|| panic!("{key}: integration names no function"));
        declared.insert((key, code_uri(&t, &function)));
        // Each function behind a route may be invoked by API Gateway.
        let allowed = resources(&t).iter().any(|(_, p)| {
            p["Type"] == "AWS::Lambda::Permission"
                && referenced(&p["Properties"]["FunctionName"]).contains(&function)
                && p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        });
        assert!(allowed, "no permission for {function}");
    }
    let served: BTreeSet<(String, String)> = local_gateway::routes::ws_routes()
        .iter()
        .map(|r| (r.route_key.to_owned(), format!("functions/{}", r.function)))
        .collect();
    assert_eq!(declared, served);
    // The deployment waits for every route.
    let deployment = resources(&t)
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::ApiGatewayV2::Deployment")
        .map(|(_, r)| r)
        .unwrap();
    let depends: BTreeSet<String> = deployment["DependsOn"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(depends, route_names);
}

#[test]
fn the_scheduler_runs_every_minute_and_is_the_only_async_target() {
    let t = template();
    let (name, scheduler) = resources(&t)
        .iter()
        .find(|(_, r)| r["Properties"]["CodeUri"] == "functions/scheduler")
        .unwrap();
    let events = scheduler["Properties"]["Events"].as_mapping().unwrap();
    assert!(
        events
            .values()
            .any(|e| e["Type"] == "Schedule" && e["Properties"]["Schedule"] == "rate(1 minute)")
    );
    let invocables: Vec<&str> = local_gateway::routes::invocables()
        .iter()
        .map(|i| i.function)
        .collect();
    assert_eq!(invocables, ["scheduler"]);
    // Least privilege: lambda:InvokeFunction only ever names the scheduler.
    for (res_name, r) in resources(&t) {
        let Some(policies) = r["Properties"]["Policies"].as_sequence() else {
            continue;
        };
        for p in policies {
            for st in p["Statement"].as_sequence().into_iter().flatten() {
                let resource = serde_norway::to_string(&st["Resource"]).unwrap();
                assert!(
                    !resource.contains("'*'") && resource.trim() != "'*'",
                    "{res_name:?}: wildcard resource"
                );
                if st["Action"] == "lambda:InvokeFunction" {
                    assert!(
                        resource.contains(name.as_str().unwrap())
                            || resource.contains("-scheduler"),
                        "{res_name:?} may invoke something else: {resource}"
                    );
                }
            }
        }
    }
}

#[test]
fn only_request_otp_may_text_and_only_phone_numbers() {
    let t = template();
    let mut texting = Vec::new();
    for (_, r) in resources(&t) {
        let Some(policies) = r["Properties"]["Policies"].as_sequence() else {
            continue;
        };
        for p in policies {
            for st in p["Statement"].as_sequence().into_iter().flatten() {
                if st["Action"] == "sns:Publish" {
                    texting.push(r["Properties"]["CodeUri"].as_str().unwrap().to_owned());
                    // Phone numbers have no ARN: allowed everywhere except on topics.
                    assert!(st["Resource"].is_null(), "{st:?}");
                    let not = serde_norway::to_string(&st["NotResource"]).unwrap();
                    assert!(not.contains(":sns:*:*:*"), "{not}");
                }
            }
        }
    }
    assert_eq!(texting, ["functions/http-request-otp"]);
    assert_eq!(t["Parameters"]["OtpMode"]["Default"], "sms");
}

#[test]
fn cors_is_one_setting_for_the_http_api_the_gateway_and_connect() {
    let t = template();
    let cors = &t["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_ascii_uppercase())
            .collect()
    };
    let upper =
        |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_ascii_uppercase()).collect() };
    assert_eq!(
        strings(&cors["AllowMethods"]),
        upper(local_gateway::cors::ALLOW_METHODS)
    );
    assert_eq!(
        strings(&cors["AllowHeaders"]),
        upper(local_gateway::cors::ALLOW_HEADERS)
    );
    assert_eq!(
        cors["MaxAge"].as_u64(),
        Some(local_gateway::cors::MAX_AGE_SECS)
    );
    // The functions get the same origins as the HTTP API.
    let env = &t["Globals"]["Function"]["Environment"]["Variables"]["CORS_ALLOWED_ORIGINS"];
    // AllowOrigins is `!Split [",", <the list joined>]`; the variable is that joined list.
    let Value::Tagged(split) = &cors["AllowOrigins"] else {
        panic!("AllowOrigins is not a !Split")
    };
    assert_eq!(&split.value[1], env);
}
