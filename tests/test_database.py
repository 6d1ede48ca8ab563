from bff.models.catalog import Category


async def test_the_migrated_database_accepts_rows(database_url: str) -> None:
    category = await Category.create(code="smoke", name="冒烟")
    assert (await Category.get(id=category.id)).name == "冒烟"
    await category.delete()
