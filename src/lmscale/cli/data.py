"""``lmscale data prepare``: a corpus streamed into token shards for corpus-scale ladders."""

from __future__ import annotations

import time

import click

from lmscale.cli._common import byte_size, err, out


@click.group("data")
def data_group():
    """Corpus preparation for ladders trained on large data."""


@data_group.command("prepare")
@click.argument("sources", nargs=-1)
@click.option(
    "--pretokenized",
    "pretokenized",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Token files made elsewhere (flat uint16/uint32 arrays) to train from as they are; needs --tokenizer.",
)
@click.option(
    "--pretokenized-val",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Their validation token files.",
)
@click.option(
    "--dtype",
    default="uint16",
    show_default=True,
    type=click.Choice(["uint16", "uint32"]),
    help="Pre-tokenized files' token type.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for shards and manifest.",
)
@click.option(
    "--tokenizer",
    "tokenizer_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Use this tokenizer.json (e.g. GPT-NeoX's) instead of training BPE.",
)
@click.option(
    "--vocab-size",
    default=50432,
    show_default=True,
    type=click.IntRange(min=258),
    help="Vocabulary of the BPE to train.",
)
@click.option(
    "--sample-bytes",
    default="256MB",
    show_default=True,
    callback=byte_size,
    help="Train BPE on at most this much text (spread over the files).",
)
@click.option(
    "--val-permille",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Documents held out for validation, per mille.",
)
@click.option(
    "--text-field", default="text", show_default=True, help="JSONL key / Parquet column of the text."
)
@click.option(
    "--eot",
    default="<|endoftext|>",
    show_default=True,
    help="End-of-text token (e.g. </s> for Llama-style tokenizers).",
)
@click.option(
    "--shard-tokens",
    default=1 << 27,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Tokens per shard file.",
)
def prepare_cmd(
    sources,
    pretokenized,
    pretokenized_val,
    dtype,
    out_dir,
    tokenizer_file,
    vocab_size,
    sample_bytes,
    val_permille,
    text_field,
    eot,
    shard_tokens,
):
    """Stream SOURCES (files, folders or globs: text, JSONL, Parquet; .gz or .zst) into token shards.
    Train a ladder from them with corpus: {name: NAME, prepared: OUT}."""
    from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from lmscale.train.shards import register_tokens
    from lmscale.train.stream import PrepareOptions, manifest, open_prepared, prepare_corpus, resolve

    if pretokenized:
        if sources or not tokenizer_file:
            raise click.UsageError("--pretokenized takes no SOURCES and needs --tokenizer")
        path = register_tokens(
            pretokenized, out_dir, tokenizer_file, val_files=pretokenized_val, dtype=dtype, eot=eot
        )
        _tok, train, val, _meta = open_prepared(out_dir)
        out.print(
            f"wrote {path}: {len(train):,} training and {len(val) if val is not None else 0:,} validation tokens, used in place"
        )
        return
    if not sources:
        raise click.UsageError("give SOURCES (files, folders or globs) or --pretokenized files")

    opts = PrepareOptions(
        vocab_size=vocab_size,
        sample_bytes=sample_bytes,
        val_permille=val_permille,
        text_field=text_field,
        eot=eot,
        shard_tokens=shard_tokens,
    )
    total = sum(f["size"] for f in manifest(resolve(sources)))  # a progress total; our own output is skipped
    t0 = time.perf_counter()
    with Progress(
        TextColumn("tokenising"), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("tokenise", total=total)
        path = prepare_corpus(
            sources,
            out_dir,
            tokenizer_file=tokenizer_file,
            options=opts,
            progress=lambda n: bar.advance(task, n),
        )
    _tok, train, val, meta = open_prepared(out_dir)
    out.print(
        f"wrote {path}: {len(train):,} training and {len(val) if val is not None else 0:,} validation tokens "
        f"({meta['n_documents']['train']:,} + {meta['n_documents']['val']:,} documents, {len(meta['train'])} shard(s), "
        f"{meta['dtype']}) in {time.perf_counter() - t0:.0f} s"
    )


COMMANDS = (data_group,)
