//! The messages of the KMS plugin API, written out for prost's derive (the
//! `.proto` files define nothing else): `v1beta1` is
//! k8s.io/apiserver/pkg/storage/value/encrypt/envelope/v1beta1/service.proto
//! (Kubernetes 1.10 on), `v2` is k8s.io/kms/apis/v2/api.proto (1.27 on; the
//! same messages as `v2alpha1` since 1.25).

/// `package v1beta1; service KeyManagementService`.
pub mod v1 {
    pub const SERVICE: &str = "v1beta1.KeyManagementService";
    /// The only API version the 1.x API servers accept in `VersionResponse`.
    pub const API_VERSION: &str = "v1beta1";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        #[prost(string, tag = "1")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        #[prost(string, tag = "3")]
        pub runtime_version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptRequest {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(bytes = "vec", tag = "2")]
        pub cipher: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub plain: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptRequest {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(bytes = "vec", tag = "2")]
        pub plain: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub cipher: Vec<u8>,
    }
}

/// `package v2; service KeyManagementService` (also served as `v2alpha1`).
pub mod v2 {
    use std::collections::HashMap;

    pub const SERVICES: [&str; 2] = ["v2.KeyManagementService", "v2alpha1.KeyManagementService"];
    pub const API_VERSION: &str = "v2";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub healthz: String,
        #[prost(string, tag = "3")]
        pub key_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub ciphertext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub uid: String,
        #[prost(string, tag = "3")]
        pub key_id: String,
        #[prost(map = "string, bytes", tag = "4")]
        pub annotations: HashMap<String, Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DecryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub plaintext: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub plaintext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub uid: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EncryptResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub ciphertext: Vec<u8>,
        #[prost(string, tag = "2")]
        pub key_id: String,
        #[prost(map = "string, bytes", tag = "3")]
        pub annotations: HashMap<String, Vec<u8>>,
    }
}
