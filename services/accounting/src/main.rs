#[tokio::main]
async fn main() -> anyhow::Result<()> {
    accounting::run().await
}
