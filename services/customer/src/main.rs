#[tokio::main]
async fn main() -> anyhow::Result<()> {
    customer::run().await
}
