"""End to end: `steward lsp` driven by pytest-lsp, a client someone else wrote.

The workspace is the repository's `rules/` folder. pytest-lsp checks every
response against the capabilities of the client it imitates (VS Code here).
Run with `STEWARD=path/to/steward pytest lsp/e2e` (see .ci/run).
"""

import asyncio
import os
import pathlib

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pygls.protocol import default_converter
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

ROOT = pathlib.Path(__file__).resolve().parents[2] / "rules"
STEWARD = os.environ.get("STEWARD", "steward")


def uri(name: str) -> str:
    return (ROOT / name).as_uri()


def make_client() -> LanguageClient:
    """pytest-lsp's test client, whose diagnostics handler also keeps the
    version each publication was for, and wakes whoever waits for one."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = {}  # uri -> (version, diagnostics)
    client.published_changed = asyncio.Condition()

    async def publish_diagnostics(client: LanguageClient, params):
        client.diagnostics[params.uri] = params.diagnostics
        client.published[params.uri] = (params.version, params.diagnostics)
        async with client.published_changed:
            client.published_changed.notify_all()

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish_diagnostics
    register_lsp_features(client, features)
    return client


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[STEWARD, "lsp"], client_factory=make_client)
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=ROOT.as_uri(),
            initialization_options={"debounceMs": 10},
        )
    )
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, name: str, text: str, version: int = 1) -> str:
    doc = uri(name)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=doc, language_id="steward", version=version, text=text
            )
        )
    )
    return doc


async def diagnostics_for(client: LanguageClient, doc: str, version: int):
    """The diagnostics the client holds for `doc` once they are for `version`.
    It waits on the client's stored state, not on the next notification, so a
    publication that arrived in a burst (or before this call) is not missed.
    The timeout only turns a server that never publishes into a failure."""

    def current():
        published = client.published.get(doc)
        return published is not None and published[0] == version

    async with client.published_changed:
        await asyncio.wait_for(client.published_changed.wait_for(current), timeout=60)
    return client.published[doc][1]


async def test_diagnostics_use_utf16_ranges_and_offer_the_fix(client: LanguageClient):
    text = 'when reservation.created if "Zoë 🎉" == "x" or riks < 0.5 then send welcome\n'
    doc = open_doc(client, "e2e_probe.stw", text)
    diagnostics = await diagnostics_for(client, doc, 1)
    unknown = [d for d in diagnostics if d.code == "E0202"]
    assert len(unknown) == 1, diagnostics
    # `riks` starts at character 46 as people count, 47 in UTF-16 units.
    assert unknown[0].range.start == types.Position(line=0, character=47)
    assert unknown[0].range.end == types.Position(line=0, character=51)

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            range=unknown[0].range,
            context=types.CodeActionContext(diagnostics=unknown),
        )
    )
    assert [a.title for a in actions] == ["replace with `risk`"]
    assert actions[0].edit.changes[doc][0].new_text == "risk"


async def test_hover_completion_and_definition(client: LanguageClient):
    text = (ROOT / "welcome.stw").read_text()
    doc = open_doc(client, "welcome.stw", text)
    await diagnostics_for(client, doc, 1)
    line = text.splitlines().index(
        "when reservation.created if risk < 0.5 then send welcome"
    )
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            position=types.Position(line=line, character=29),
        )
    )
    assert "(field) risk: float" in hover.contents.value

    definition = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            position=types.Position(line=line, character=53),
        )
    )
    assert definition.uri == uri("declarations.stw")

    edited = text.replace("if risk < 0.5", "if guest.")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=edited)],
        )
    )
    completion = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            position=types.Position(line=line, character=len("when reservation.created if guest.")),
        )
    )
    items = completion.items if hasattr(completion, "items") else completion
    labels = [item.label for item in items]
    assert {"email", "first_name", "vip", "phone"} <= set(labels), labels


async def test_rename_and_formatting(client: LanguageClient):
    text = (ROOT / "welcome.stw").read_text()
    doc = open_doc(client, "welcome.stw", text)
    line = text.splitlines().index(
        "when reservation.created if risk < 0.5 then send welcome"
    )
    edit = await client.text_document_rename_async(
        types.RenameParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            position=types.Position(line=line, character=51),
            new_name="greeting",
        )
    )
    # The message's declaration, this `send`, and the tests' `expect send welcome`s.
    assert uri("declarations.stw") in edit.changes
    assert all(e.new_text == "greeting" for e in edit.changes[doc])
    assert len(edit.changes[doc]) >= 3

    messy = text.replace("if risk < 0.5", "if risk<0.5")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=messy)],
        )
    )
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=doc),
            options=types.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    assert len(edits) == 1 and edits[0].new_text == text


async def test_a_burst_of_edits_ends_with_the_final_text(client: LanguageClient):
    doc = open_doc(client, "e2e_burst.stw", "when reservation.created then log \"\"\n")
    await diagnostics_for(client, doc, 1)
    for version in range(2, 52):
        # Typing ` riks` and then deleting it, one character per edit.
        typed = " {riks}" if version < 51 else ""
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=doc, version=version),
                content_changes=[
                    types.TextDocumentContentChangeWholeDocument(
                        text=f'when reservation.created then log "{"x" * version}{typed}"\n'
                    )
                ],
            )
        )
    diagnostics = await diagnostics_for(client, doc, 51)
    assert list(diagnostics) == []
