#[tokio::main]
async fn main() -> anyhow::Result<()> {
    legacy_core::run().await
}
