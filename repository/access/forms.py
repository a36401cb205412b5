"""The web forms of access requests and share links: they shape POST data for the services, which check the
rules (a day that has passed, a message that is too long) with the same messages as the API."""

from django import forms

from repository.access.services import MAX_LABEL_LENGTH, MAX_MESSAGE_LENGTH

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AccessRequestForm(forms.Form):
    message = forms.CharField(max_length=MAX_MESSAGE_LENGTH, widget=forms.Textarea(attrs={"rows": 4}),
                              help_text="To the owners: who you are and why you need the files.")


class AccessAcceptForm(forms.Form):
    until = forms.DateField(required=False, widget=DATE_WIDGET, label="Until (optional)",
                            help_text="The last day of access; empty: no end.")


class AccessDeclineForm(forms.Form):
    reason = forms.CharField(required=False, max_length=MAX_MESSAGE_LENGTH, label="Reason (optional)",
                             widget=forms.Textarea(attrs={"rows": 2}), help_text="Sent to the requester.")


class ShareLinkForm(forms.Form):
    label = forms.CharField(required=False, max_length=MAX_LABEL_LENGTH, label="Label (optional)",
                            help_text="Whom it is for, e.g. “Referee 2”.")
    expires = forms.DateField(required=False, widget=DATE_WIDGET, label="Works until (optional)",
                              help_text="The last day the link works; empty: until you revoke it.")
