#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tax_consumer::run().await
}
