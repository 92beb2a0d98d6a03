"""`dunning letters …`: the letter service and its outbound documents.

    dunning letters serve [--until-idle SECONDS]
    dunning letters list [--unsent] [--account ID] [--run RUN] [--json]
    dunning letters show ID
    dunning letters send --unsent
    dunning letters resend ID…
    dunning letters print --run RUN [--output FILE] [--duplex]
    dunning letters attach ID…|--held
    dunning letters check-texts [--texts FOLDER] [--procedures FILE]
    dunning letters preview --procedure P --level N --language L [--texts FOLDER]
                            [--procedures FILE] [--out FILE.pdf]
    dunning letters bounce ID --reason TEXT

An ID is a letter's command id, or an unambiguous beginning of it (as `list` shows it).
`--run` takes a proposal run id (`PR-2025-03-31/1`) or its payment run id (`PR-2025-03-31`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from config.logs import configure
from config.settings import Settings, SettingsError
from letters.config import LetterSettings, letters_dir
from letters.store import AmbiguousId, Store
from topics.broker import ensure_broker

# letters.service, letters.printing and letters.mailer (fpdf2, pypdf, SMTP) are imported by
# the commands that use them: heavy, and `dunning --help` loads this module.

SHORT_ID = 12


def _settings() -> tuple[Settings, LetterSettings]:
    """The settings, and logging set up (to stderr: stdout is for the command's output)."""
    try:
        settings, cfg = Settings.from_env(), LetterSettings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc
    configure(settings.log_format, settings.log_level)
    return settings, cfg


def _store(settings: Settings) -> Store:
    return Store(letters_dir(settings))


def _lang(doc: Any) -> str:
    return f"{doc.language}→{doc.template_language}" if doc.fallback else doc.template_language


def _find(store: Store, ident: str) -> Any:
    try:
        return store.find(ident)
    except (KeyError, AmbiguousId) as exc:
        raise SystemExit(f"dunning: {exc.args[0]}") from exc


# ---------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    settings, cfg = _settings()
    ensure_broker(settings)
    from letters.service import LetterService  # heavy: see the top
    from letters.texts import TextsError

    service = LetterService(settings, cfg)
    try:
        if args.until_idle is not None:
            docs = asyncio.run(service.run_until_idle(args.until_idle))
            print(f"{len(docs)} letters rendered; documents in {service.folder}")
        else:
            asyncio.run(service.serve())
    except TextsError as exc:  # the start-up check: say what, without a traceback
        raise SystemExit(f"dunning: {exc}") from exc
    finally:
        service.close()
    return 0


# ---------------------------------------------------------------- list / show
def cmd_list(args: argparse.Namespace) -> int:
    settings, _ = _settings()
    with _store(settings) as store:
        docs = store.documents(unsent=args.unsent, account=args.account, run=args.run)
    if args.json:
        for d in docs:
            print(json.dumps(d.summary(), ensure_ascii=False))
        return 0
    if not docs:
        print("no letters", file=sys.stderr)
        return 0
    header = ("ID", "ACCOUNT", "RUN", "LEVEL", "LANG", "DELIVERY", "STATUS", "TRIES",
              "TOTAL DUE", "AS OF")
    rows = [(d.command_id[:SHORT_ID], d.account_id, d.run_id or "-", str(d.level), _lang(d),
             d.delivery, d.status, str(d.attempts), f"{d.total_due} {d.currency}",
             d.as_of_date) for d in docs]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    print(f"{len(docs)} letter{'' if len(docs) == 1 else 's'}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from letters.printing import check, pdf_text  # heavy: see the top

    settings, _ = _settings()
    with _store(settings) as store:
        doc = _find(store, args.id)
        attempts = store.attempts(doc.command_id)
    print(doc.pdf_path)
    fields = [
        ("command", doc.command_id), ("notice", doc.notice_id), ("run", doc.run_id or "-"),
        ("account", doc.account_id), ("level", f"{doc.level} ({doc.title})"),
        ("language", _lang(doc) + (" (no template: fallback)" if doc.fallback else "")),
        ("channel", doc.channel), ("delivery", doc.delivery), ("status", doc.status),
        ("e-mail", doc.email or "-"), ("total due", f"{doc.total_due} {doc.currency}"),
        ("created", doc.created_at), ("sha256", doc.sha256), ("pages", str(doc.pages)),
    ]
    if doc.sent_at:
        fields.append(("sent", doc.sent_at))
    if doc.last_error:
        fields.append(("last error", doc.last_error))
    if doc.note:
        fields.append(("note", doc.note))
    fields += [("attached", f"{a.filename} (invoice {a.invoice_id})") for a in doc.attachments]
    fields += [("missing", f"invoice {m}") for m in doc.missing_attachments]
    for name, value in fields:
        print(f"{name + ':':<11} {value}")
    for a in attempts:
        print(f"{'attempt:':<11} {a.at} {a.kind} {a.outcome}{': ' + a.error if a.error else ''}")
    try:
        check(doc)
    except ValueError as exc:
        print(f"\ndunning: {exc}", file=sys.stderr)
        return 1
    print()
    print(pdf_text(doc.pdf_path))
    return 0


# ---------------------------------------------------------------- send / resend
def _report(doc: Any) -> str:
    line = f"{doc.status:<8} {doc.command_id[:SHORT_ID]}  {doc.account_id}"
    return f"{line}: {doc.last_error}" if doc.status != "sent" and doc.last_error else line


def cmd_send(args: argparse.Namespace) -> int:
    from letters.mailer import Mailer  # heavy: see the top

    if not args.unsent:
        raise SystemExit("dunning: say `letters send --unsent`, or `letters resend ID…`")
    settings, cfg = _settings()
    if not cfg.email_enabled:
        raise SystemExit("dunning: no SMTP server configured: set DUNNING_SMTP_HOST")
    with _store(settings) as store:
        docs = asyncio.run(Mailer(cfg, store).send_due(include_waiting=True))
        for doc in docs:
            print(_report(doc))
        unknown = store.documents(unsent=True)
        unknown = [d for d in unknown if d.status == "unknown"]
        _publish_feedback(settings, store)
    failed = [d for d in docs if d.status != "sent"]
    print(f"{len(docs) - len(failed)} sent, {len(failed)} failed", file=sys.stderr)
    for d in unknown:
        print(f"unknown  {d.command_id[:SHORT_ID]}  {d.account_id}: delivery was interrupted;"
              f" check, then `dunning letters resend {d.command_id[:SHORT_ID]}`",
              file=sys.stderr)
    return 1 if failed else 0


def cmd_resend(args: argparse.Namespace) -> int:
    from letters.mailer import Mailer  # heavy: see the top

    settings, cfg = _settings()
    if not cfg.email_enabled:
        raise SystemExit("dunning: no SMTP server configured: set DUNNING_SMTP_HOST")
    code = 0
    with _store(settings) as store:
        docs = [_find(store, ident) for ident in args.ids]
        mailer = Mailer(cfg, store)
        for doc in docs:
            if doc.delivery != "email":
                why = "print channel" if doc.channel == "print" else "no e-mail address"
                if store.printed_instead(doc.command_id):
                    why = "its e-mail was given up: printed instead"
                print(f"skipped  {doc.command_id[:SHORT_ID]}  {doc.account_id}: {why}, "
                      "never e-mailed")
                code = 1
                continue
            after = asyncio.run(mailer.deliver(doc, resend=True))
            if after.status == "sending":
                print(f"busy     {doc.command_id[:SHORT_ID]}  {doc.account_id}: "
                      "being sent right now")
                code = 1
                continue
            print(_report(after))
            if after.status != "sent":
                code = 1
        _publish_feedback(settings, store)
    return code


# ---------------------------------------------------------------- print
def cmd_print(args: argparse.Namespace) -> int:
    from letters.printing import print_batch  # heavy: see the top

    settings, _ = _settings()
    with _store(settings) as store:
        docs = store.documents(run=args.run, delivery="print")
    if not docs:
        raise SystemExit(f"dunning: no print letters for run {args.run!r}")
    docs.sort(key=lambda d: (d.account_id, d.command_id))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", args.run).strip("._") or "run"
    output = Path(args.output) if args.output else letters_dir(settings) / "print" / f"{safe}.pdf"
    try:
        pages = print_batch(docs, output, duplex=args.duplex)
    except ValueError as exc:
        raise SystemExit(f"dunning: {exc}") from exc
    print(output)
    print(f"{len(docs)} letters, {pages} pages", file=sys.stderr)
    _printed(settings, docs, output)
    return 0


# ---------------------------------------------------------------- delivery feedback
def _publish_feedback(settings: Settings, store: Store) -> None:
    """Publish the delivery outcomes not published yet (decision 14); without a broker
    they wait for `letters serve`, which publishes them at start."""
    from letters.feedback import publish_pending  # heavy: see the top

    try:
        ensure_broker(settings)
        asyncio.run(publish_pending(settings, store))
    except (Exception, SystemExit) as exc:  # ensure_broker exits without a broker
        print(f"dunning: delivery outcomes not published yet ({exc}); "
              "`dunning letters serve` publishes them", file=sys.stderr)


def _printed(settings: Settings, docs: Any, output: Path) -> None:
    from letters.feedback import record_printed  # heavy: see the top

    with _store(settings) as store:
        record_printed(store, docs, output)
        _publish_feedback(settings, store)


def cmd_bounce(args: argparse.Namespace) -> int:
    from letters.feedback import record_bounce  # heavy: see the top

    settings, cfg = _settings()
    with _store(settings) as store:
        doc = _find(store, args.id)
        try:
            step = record_bounce(store, cfg, doc, args.reason)
        except ValueError as exc:
            raise SystemExit(f"dunning: {exc}") from exc
        _publish_feedback(settings, store)
    then = "printed instead (the next `letters print`)" if step == "print" else \
        "waits for a person (`letters resend`)"
    print(f"bounced  {doc.command_id[:SHORT_ID]}  {doc.account_id}: {then}")
    return 0


# ---------------------------------------------------------------- attach
def cmd_attach(args: argparse.Namespace) -> int:
    """Fetch the missing invoice documents of held letters again."""
    from letters.documents import collect
    from letters.model import Letter

    if not args.ids and not args.held:
        raise SystemExit("dunning: say `letters attach --held`, or `letters attach ID…`")
    settings, cfg = _settings()
    if cfg.invoice_documents is None:
        raise SystemExit("dunning: no invoice document source: set DUNNING_INVOICE_DOCUMENTS")
    code = 0
    with _store(settings) as store:
        docs = ([_find(store, i) for i in args.ids] if args.ids else
                [d for d in store.documents(unsent=True) if d.status == "held"])
        for doc in docs:
            if doc.status != "held":
                print(f"skipped  {doc.command_id[:SHORT_ID]}  {doc.account_id}: {doc.status},"
                      " not held")
                code = 1
                continue
            letter = Letter.from_json(json.loads(store.command_json(doc.command_id)))
            rel = doc.pdf_path.relative_to(store.folder)
            found = asyncio.run(collect(cfg.invoice_documents, letter, store.folder, rel))
            after = store.update_attachments(doc.command_id, found.record())
            print(f"{after.status:<8} {after.command_id[:SHORT_ID]}  {after.account_id}"
                  + "".join(f"\n  missing: {m}" for m in after.missing_attachments))
            code = code or int(after.status == "held")
    print(f"{len(docs)} letters looked at", file=sys.stderr)
    return code


# ---------------------------------------------------------------- texts
def _texts(args: argparse.Namespace) -> tuple[Settings, LetterSettings, Any]:
    """The settings and their texts, or those of `--texts FOLDER`."""
    from letters.texts import Texts  # Jinja2, Babel: see the top

    settings, cfg = _settings()
    folder = Path(args.texts) if args.texts else cfg.texts_folder
    return settings, cfg, Texts(folder, cfg.languages, cfg.default_language)


def _procedures(args: argparse.Namespace, settings: Settings,
                cfg: LetterSettings) -> dict[str, tuple[int, ...]]:
    """The letter levels of `--procedures FILE`, else of the procedures in force."""
    from letters.texts import TextsError, letter_levels, procedures_in_force, read_procedures

    try:
        if args.procedures:
            return letter_levels(read_procedures(Path(args.procedures)))
        if cfg.procedures_file is None:
            ensure_broker(settings)
        return asyncio.run(procedures_in_force(settings, cfg))
    except TextsError as exc:
        raise SystemExit(f"dunning: {exc}") from exc


def cmd_check_texts(args: argparse.Namespace) -> int:
    settings, cfg, texts = _texts(args)
    procedures = _procedures(args, settings, cfg)
    report = texts.check(procedures)
    where = texts.folder or "the bundled texts only (no DUNNING_LETTER_TEXTS)"
    print(f"texts: {where}; languages {', '.join(texts.languages)} (default {texts.default});"
          f" {len(procedures)} procedures")
    for note in report.notes:
        print(f"note:  {note}")
    for error in report.errors:
        print(f"error: {error}")
    print("texts ok" if report.ok else f"{len(report.errors)} errors", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_preview(args: argparse.Namespace) -> int:
    from datetime import date

    from letters.printing import pdf_text  # heavy: see the top
    from letters.render import render
    from letters.texts import TextsError, read_procedures, sample_letter

    _, cfg, texts = _texts(args)
    report = texts.check()
    if report.errors:
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    pay_within, charge = 14, None
    if args.procedures:
        try:
            procs = {p.id: p for p in read_procedures(Path(args.procedures))}
        except TextsError as exc:
            raise SystemExit(f"dunning: {exc}") from exc
        if args.procedure not in procs:
            raise SystemExit(f"dunning: no procedure {args.procedure!r} in {args.procedures}")
        level = next((lv for lv in procs[args.procedure].levels if lv.level == args.level), None)
        if level is None:
            raise SystemExit(f"dunning: procedure {args.procedure} has no level {args.level}")
        pay_within, charge = level.pay_within_days, level.charge
    letter = sample_letter(args.procedure, args.level, args.language, date.today(),
                           pay_within, *([charge] if charge is not None else []))
    rendered = render(letter, cfg.letterhead, cfg.creditor, texts)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{args.procedure}-{args.level}-{args.language}")
    out = Path(args.out) if args.out else Path(f"preview-{name}.pdf")
    out.write_bytes(rendered.pdf)
    print(out)
    if rendered.fallback:
        print(f"(no {args.language} text: written in {rendered.language})")
    print()
    print(pdf_text(out))
    return 0


# ---------------------------------------------------------------- parser
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `letters` and its subcommands to the `dunning` parser's subparsers."""
    p = subparsers.add_parser(
        "letters", help="dunning letters: render, list, show, e-mail and print",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="letters_command", required=True)

    s = sub.add_parser("serve", help="consume dunning.letters: render, store, e-mail")
    s.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                   help="stop once nothing came in for this long and nothing is left to send")
    s.set_defaults(func=cmd_serve)

    ls = sub.add_parser("list", help="the outbound documents")
    ls.add_argument("--unsent", action="store_true", help="only e-mail letters not sent")
    ls.add_argument("--account", default=None)
    ls.add_argument("--run", default=None, help="a run id or payment run id")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="the path of a letter's PDF, its record and its text")
    sh.add_argument("id", help="a command id, its beginning, or a payment code's reference")
    sh.set_defaults(func=cmd_show)

    se = sub.add_parser("send", help="e-mail the letters not sent yet")
    se.add_argument("--unsent", action="store_true", required=True)
    se.set_defaults(func=cmd_send)

    rs = sub.add_parser("resend", help="e-mail letters again, sent or not")
    rs.add_argument("ids", nargs="+", metavar="ID")
    rs.set_defaults(func=cmd_resend)

    pr = sub.add_parser("print", help="one PDF with every print letter of a run")
    pr.add_argument("--run", required=True)
    pr.add_argument("--output", default=None, help="default: <state>/letters/print/<run>.pdf")
    pr.add_argument("--duplex", action="store_true",
                    help="a blank back page after letters with an odd page count")
    pr.set_defaults(func=cmd_print)

    at = sub.add_parser("attach", help="fetch the missing invoice documents of held letters"
                        " again; one with all of them is sent by serve")
    at.add_argument("ids", nargs="*", metavar="ID")
    at.add_argument("--held", action="store_true", help="every held letter")
    at.set_defaults(func=cmd_attach)

    ct = sub.add_parser("check-texts", help="check the letter texts for every procedure "
                        "(what `serve` checks at start-up)")
    ct.add_argument("--texts", default=None, help="default: DUNNING_LETTER_TEXTS")
    ct.add_argument("--procedures", default=None, metavar="FILE",
                    help="a procedures file; default: DUNNING_LETTER_PROCEDURES, else the "
                    "procedures on dunning.procedures")
    ct.set_defaults(func=cmd_check_texts)

    pv = sub.add_parser("preview", help="a sample letter with the texts: PDF and its text")
    pv.add_argument("--procedure", required=True)
    pv.add_argument("--level", type=int, required=True)
    pv.add_argument("--language", required=True)
    pv.add_argument("--texts", default=None, help="default: DUNNING_LETTER_TEXTS")
    pv.add_argument("--procedures", default=None, metavar="FILE",
                    help="take the level's pay_within_days and charge from this file")
    pv.add_argument("--out", default=None, help="the PDF; default: ./preview-….pdf")
    pv.set_defaults(func=cmd_preview)
    bo = sub.add_parser("bounce", help="a sent e-mail letter bounced (a delivery report)")
    bo.add_argument("id", help="a command id or its beginning")
    bo.add_argument("--reason", required=True, help="the bounce reason, as the report says")
    bo.set_defaults(func=cmd_bounce)
    return p
