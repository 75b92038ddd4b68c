#[tokio::main]
async fn main() -> anyhow::Result<()> {
    account_info::run().await
}
