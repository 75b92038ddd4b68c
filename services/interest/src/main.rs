#[tokio::main]
async fn main() -> anyhow::Result<()> {
    interest::run().await
}
